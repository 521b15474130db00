"""Idempotency-Key: replay, reuse, in-flight, races, expiry and purge, on every database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest
from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from httpx import Response as HttpResponse
from sqlalchemy import func, select

from kit.api import RuntimeDep, StrictModel
from kit.problems import ProblemError
from kit.unit_of_work import UnitOfWork
from orders.adapters.idempotency_store import purge_expired
from orders.adapters.tables import CatalogItem, IdempotencyRecord
from orders.entrypoints.idempotency import (
    REPLAYED_HEADER,
    IdempotentRequest,
    IdempotentRequestDep,
    InFlightKeys,
    Rendered,
    fingerprint,
    parse_key,
    run_idempotent,
)
from orders.testing import GatewayHarness, assert_problem

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)


@dataclass
class Things:
    """The knobs of a tiny endpoint whose effect is one catalog row per run."""

    now: datetime = T0
    in_flight: InFlightKeys = field(default_factory=InFlightKeys)
    # Cleared, the effect waits for it: the request stays in flight.
    gate: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    # The effect also writes a record for its own key, as a racing writer that our
    # lookup could not see yet would have.
    squat: bool = False

    def __post_init__(self) -> None:
        self.gate.set()

    def work(self, name: str, key: str = "", refuse: bool = False) -> Callable[[UnitOfWork], str]:
        def make_thing(uow: UnitOfWork) -> str:
            if refuse:
                raise ProblemError(422, "thing-refused", "Thing refused", f"{name} is refused")
            sku = uuid.uuid4().hex
            uow.session.add(
                CatalogItem(
                    sku=sku, name=name, unit_price=100, currency="EUR", active=True, updated_at=T0
                )
            )
            if self.squat:
                uow.session.add(
                    IdempotencyRecord(
                        client_id="shop-1",
                        key=key,
                        fingerprint="other",
                        response_status=201,
                        response_body={},
                        location=None,
                        created_at=T0,
                        expires_at=T0 + TTL,
                    )
                )
            self.started.set()
            if not self.gate.wait(timeout=30):
                raise TimeoutError("the test never opened the gate")
            return sku

        return make_thing

    def render(self, status: int = 202) -> Callable[[str], Rendered]:
        def rendered(sku: str) -> Rendered:
            return Rendered(status, {"sku": sku, "made_at": T0.isoformat()}, f"/things/{sku}")

        return rendered

    def run(
        self, process: GatewayHarness, request: IdempotentRequest, name: str = "mug"
    ) -> Callable[[], asyncio.Future[JSONResponse]]:
        """A call of run_idempotent as one gateway process would make it."""

        def call() -> asyncio.Future[JSONResponse]:
            return asyncio.ensure_future(
                run_idempotent(
                    process.runtime,
                    "shop-1",
                    request,
                    self.work(name, request.key),
                    self.render(),
                    ttl=TTL,
                    clock=lambda: self.now,
                    in_flight=self.in_flight,
                )
            )

        return call


class ThingIn(StrictModel):
    name: str
    refuse: bool = False
    answer_status: int = 202


def things_router(things: Things) -> APIRouter:
    router = APIRouter()

    @router.post("/things", status_code=202)
    async def create_thing(
        body: ThingIn,
        idempotency: IdempotentRequestDep,
        runtime: RuntimeDep,
        client_id: Annotated[str, Header(alias="X-Client")] = "shop-1",
    ) -> Response:
        return await run_idempotent(
            runtime,
            client_id,
            idempotency,
            things.work(body.name, idempotency.key, body.refuse),
            things.render(body.answer_status),
            ttl=TTL,
            clock=lambda: things.now,
            in_flight=things.in_flight,
        )

    @router.post("/things/{sku}/polish", status_code=202)
    async def polish_thing(
        sku: str, idempotency: IdempotentRequestDep, runtime: RuntimeDep
    ) -> Response:
        return await run_idempotent(
            runtime,
            "shop-1",
            idempotency,
            things.work(f"polished {sku}"),
            things.render(),
            ttl=TTL,
            clock=lambda: things.now,
            in_flight=things.in_flight,
        )

    return router


@pytest.fixture
def things() -> Things:
    return Things()


@pytest.fixture
def client(orders_db: GatewayHarness, things: Things) -> Iterator[TestClient]:
    with TestClient(orders_db.app(things_router(things))) as client:
        yield client


@contextlib.asynccontextmanager
async def committing(*harnesses: GatewayHarness) -> AsyncIterator[None]:
    """The group committers of gateway processes, as their lifespan runs them."""
    tasks = [asyncio.create_task(h.runtime.committer.run()) for h in harnesses]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def effects(orders_db: GatewayHarness) -> int:
    with orders_db.session() as session:
        return session.scalar(select(func.count()).select_from(CatalogItem)) or 0


def records(orders_db: GatewayHarness) -> list[IdempotencyRecord]:
    with orders_db.session() as session:
        return list(session.scalars(select(IdempotencyRecord).order_by(IdempotencyRecord.key)))


def post(
    client: TestClient, key: str | None, body: object = None, client_id: str = "shop-1"
) -> HttpResponse:
    headers = {"X-Client": client_id}
    if key is not None:
        headers["Idempotency-Key"] = key
    response: HttpResponse = client.post("/things", json=body or {"name": "mug"}, headers=headers)
    return response


# -- the key and the fingerprint ---------------------------------------------------------------


def test_the_fingerprint_ignores_json_formatting_and_key_order() -> None:
    compact = json.loads('{"a":1,"b":{"y":[1,2],"x":"é"}}')
    spaced = json.loads('{ "b": { "x": "é", "y": [1, 2] },\n "a": 1 }')
    assert fingerprint("POST", "/v1/orders", compact) == fingerprint("post", "/v1/orders", spaced)


def test_the_fingerprint_tells_method_path_and_body_apart() -> None:
    base = fingerprint("POST", "/v1/orders", {"a": 1})
    assert fingerprint("PUT", "/v1/orders", {"a": 1}) != base
    assert fingerprint("POST", "/v1/orders/1/cancel", {"a": 1}) != base
    assert fingerprint("POST", "/v1/orders", {"a": 2}) != base
    assert fingerprint("POST", "/v1/orders", None) != base


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"8e03978e-40d5"', "8e03978e-40d5"),  # the draft's Structured Field string
        ('"a \\"quoted\\" \\\\ key"', 'a "quoted" \\ key'),
        ("k" * 255, "k" * 255),
    ],
)
def test_a_key_is_a_bare_value_or_a_structured_field_string(header: str, key: str) -> None:
    assert parse_key(header) == key


@pytest.mark.parametrize(
    "header", ["", '""', "k" * 256, "naïve", "tab\there", '"unterminated', '"a\\b"', '"a"b"']
)
def test_an_empty_long_or_malformed_key_is_invalid(header: str) -> None:
    with pytest.raises(ProblemError) as refused:
        parse_key(header)
    assert (refused.value.status, refused.value.kind) == (400, "idempotency-key-invalid")


def test_a_post_without_a_key_is_refused_and_changes_nothing(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    body = assert_problem(post(client, None), 400, "idempotency-key-missing")
    assert "Idempotency-Key" in str(body["detail"])
    assert_problem(post(client, ""), 400, "idempotency-key-invalid")
    assert_problem(post(client, "k" * 256), 400, "idempotency-key-invalid")
    assert effects(orders_db) == 0


# -- replay and reuse --------------------------------------------------------------------------


def test_a_retry_replays_the_first_response_and_makes_nothing_new(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    first = post(client, "k-1")
    assert first.status_code == 202, first.text
    assert REPLAYED_HEADER not in first.headers
    assert first.headers["location"] == f"/things/{first.json()['sku']}"

    again = post(client, "k-1")
    assert again.status_code == 202
    assert again.headers[REPLAYED_HEADER] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert effects(orders_db) == 1


def test_a_retry_formatted_differently_is_still_the_same_request(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    headers = {"Idempotency-Key": "k-2", "Content-Type": "application/json"}
    first = client.post("/things", content=b'{"name":"mug","refuse":false}', headers=headers)
    again = client.post(
        "/things", content=b'{\n  "refuse": false,\n  "name": "mug"\n}', headers=headers
    )
    assert first.status_code == again.status_code == 202
    assert again.headers[REPLAYED_HEADER] == "true"
    assert again.json() == first.json()
    assert effects(orders_db) == 1


def test_a_key_reused_for_another_request_is_refused(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    assert post(client, "k-3", {"name": "mug"}).status_code == 202
    body = assert_problem(post(client, "k-3", {"name": "teapot"}), 422, "idempotency-key-reused")
    assert "k-3" in str(body["detail"])
    # The path is part of the request: the same key on another endpoint is a reuse too.
    other = client.post("/things/x/polish", headers={"Idempotency-Key": "k-3"})
    assert_problem(other, 422, "idempotency-key-reused")
    assert effects(orders_db) == 1


def test_an_endpoint_without_a_body_is_replayed_too(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    first = client.post("/things/x/polish", headers={"Idempotency-Key": "p-1"})
    again = client.post("/things/x/polish", headers={"Idempotency-Key": "p-1"})
    assert first.status_code == again.status_code == 202
    assert again.headers[REPLAYED_HEADER] == "true"
    assert again.content == first.content
    # Whatever comes as a body is part of the request, JSON or not.
    headers = {"Idempotency-Key": "p-2", "Content-Type": "text/plain"}
    assert client.post("/things/x/polish", content=b"a", headers=headers).status_code == 202
    replayed = client.post("/things/x/polish", content=b"a", headers=headers)
    assert replayed.headers[REPLAYED_HEADER] == "true"
    reused = client.post("/things/x/polish", content=b"b", headers=headers)
    assert_problem(reused, 422, "idempotency-key-reused")
    assert effects(orders_db) == 2


def test_two_clients_may_use_the_same_key(orders_db: GatewayHarness, client: TestClient) -> None:
    first = post(client, "shared", client_id="shop-1")
    second = post(client, "shared", client_id="shop-2")
    assert first.status_code == second.status_code == 202
    assert REPLAYED_HEADER not in second.headers
    assert first.json() != second.json()
    assert effects(orders_db) == 2
    assert [(r.client_id, r.key) for r in records(orders_db)] == [
        ("shop-1", "shared"),
        ("shop-2", "shared"),
    ]


def test_a_failed_request_stores_nothing_and_its_key_can_be_retried(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    refused = post(client, "k-4", {"name": "mug", "refuse": True})
    assert_problem(refused, 422, "thing-refused")
    assert records(orders_db) == []
    # Fixed, the request is another request, yet the key is free again.
    fixed = post(client, "k-4", {"name": "mug"})
    assert fixed.status_code == 202
    assert REPLAYED_HEADER not in fixed.headers
    assert effects(orders_db) == 1


def test_an_answer_that_is_not_a_success_is_not_stored(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    first = post(client, "k-5", {"name": "mug", "answer_status": 409})
    assert first.status_code == 409
    again = post(client, "k-5", {"name": "mug", "answer_status": 409})
    assert REPLAYED_HEADER not in again.headers
    assert records(orders_db) == []


# -- in flight and concurrent ------------------------------------------------------------------


def test_a_retry_while_the_first_request_runs_is_told_the_key_is_in_use(
    orders_db: GatewayHarness, client: TestClient, things: Things
) -> None:
    things.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, client, "k-6")
        assert things.started.wait(timeout=30)
        body = assert_problem(post(client, "k-6"), 409, "idempotency-key-in-use")
        assert "k-6" in str(body["detail"])
        things.gate.set()
        assert first.result(timeout=30).status_code == 202
    assert post(client, "k-6").headers[REPLAYED_HEADER] == "true"
    assert effects(orders_db) == 1


def test_concurrent_identical_requests_make_exactly_one_effect(
    orders_db: GatewayHarness, client: TestClient
) -> None:
    n = 20
    barrier = threading.Barrier(n)

    def send(_: int) -> HttpResponse:
        barrier.wait(timeout=30)
        return post(client, "k-7")

    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(send, range(n)))

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {202, 409}, statuses
    accepted = [r for r in responses if r.status_code == 202]
    originals = [r for r in accepted if REPLAYED_HEADER not in r.headers]
    assert len(originals) == 1
    assert {r.content for r in accepted} == {originals[0].content}
    for refused in (r for r in responses if r.status_code == 409):
        assert_problem(refused, 409, "idempotency-key-in-use")
    assert effects(orders_db) == 1
    assert len(records(orders_db)) == 1


async def test_concurrent_requests_in_several_processes_make_exactly_one_effect(
    database_url: str,
) -> None:
    """No shared in-flight registry: the database alone decides."""
    request = IdempotentRequest("k-8", fingerprint("POST", "/things", {"name": "mug"}))
    with GatewayHarness(database_url) as first, GatewayHarness(database_url) as second:
        processes = [first, second]
        async with committing(*processes):
            calls = [Things().run(processes[n % 2], request) for n in range(20)]
            outcomes = await asyncio.gather(*(call() for call in calls), return_exceptions=True)
        made = effects(first)
    assert made == 1
    responses = [o for o in outcomes if isinstance(o, JSONResponse)]
    refusals = [o for o in outcomes if not isinstance(o, JSONResponse)]
    assert all(isinstance(r, ProblemError) and r.status == 409 for r in refusals), refusals
    originals = [r for r in responses if REPLAYED_HEADER not in r.headers]
    assert len(originals) == 1
    assert {bytes(r.body) for r in responses} == {bytes(originals[0].body)}
    assert {r.status_code for r in responses} == {202}


async def test_a_process_that_loses_the_race_replays_the_winner(postgresql_url: str) -> None:
    # PostgreSQL only: with SQLite's single writer the loser's transaction starts after the
    # winner's commit, so there is no race to lose.
    request = IdempotentRequest("k-9", fingerprint("POST", "/things", {"name": "mug"}))
    slow = Things()
    slow.gate.clear()
    with GatewayHarness(postgresql_url) as loser, GatewayHarness(postgresql_url) as winner:
        async with committing(loser, winner):
            # The loser checked for the key and is making its effect when the winner commits.
            losing = slow.run(loser, request)()
            assert await asyncio.to_thread(slow.started.wait, 30)
            won = await Things().run(winner, request)()
            slow.gate.set()
            lost = await losing
        assert REPLAYED_HEADER not in won.headers
        assert lost.headers[REPLAYED_HEADER] == "true"
        assert bytes(lost.body) == bytes(won.body)
        assert lost.headers["location"] == won.headers["location"]
        assert effects(winner) == 1  # the loser's effect was rolled back with its insert


async def test_a_key_taken_by_a_record_not_visible_yet_is_in_use(
    orders_db: GatewayHarness, things: Things
) -> None:
    things.squat = True
    request = IdempotentRequest("k-10", fingerprint("POST", "/things", {"name": "mug"}))
    async with committing(orders_db):
        with pytest.raises(ProblemError) as refused:
            await things.run(orders_db, request)()
    assert (refused.value.status, refused.value.kind) == (409, "idempotency-key-in-use")
    assert effects(orders_db) == 0
    assert records(orders_db) == []


# -- expiry ------------------------------------------------------------------------------------


def test_an_expired_key_is_forgotten_and_can_be_used_afresh(
    orders_db: GatewayHarness, client: TestClient, things: Things
) -> None:
    first = post(client, "k-11", {"name": "mug"})
    things.now = T0 + TTL - timedelta(seconds=1)
    assert post(client, "k-11", {"name": "mug"}).headers[REPLAYED_HEADER] == "true"

    things.now = T0 + TTL
    fresh = post(client, "k-11", {"name": "teapot"})  # no longer a reuse: a new request
    assert fresh.status_code == 202
    assert REPLAYED_HEADER not in fresh.headers
    assert fresh.json() != first.json()
    assert effects(orders_db) == 2
    (record,) = records(orders_db)
    assert record.expires_at == T0 + 2 * TTL
    assert record.response_body == fresh.json()


def test_the_purge_deletes_expired_records_only(
    orders_db: GatewayHarness, client: TestClient, things: Things
) -> None:
    for n in range(3):
        things.now = T0 + timedelta(minutes=n)
        assert post(client, f"p-{n}").status_code == 202

    purged = orders_db.run(lambda uow: purge_expired(uow, T0 + TTL + timedelta(minutes=1)))

    assert purged == 2
    assert [r.key for r in records(orders_db)] == ["p-2"]
    assert orders_db.run(lambda uow: purge_expired(uow, T0 + TTL + timedelta(minutes=1))) == 0
