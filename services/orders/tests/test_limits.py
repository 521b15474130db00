"""Request limits: body size (413), per-client rate (429 + Retry-After), per-customer holdings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Annotated

import limits.storage.memory
import pytest
from fastapi import Depends, FastAPI, Header, Request
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Message

from kit.api import RuntimeDep
from kit.problems import PROBLEM_JSON, ProblemError, install_problem_handlers
from orders.domain.pricing import RequestedLine
from orders.domain.saga import OrderStatus
from orders.entrypoints import limits as gateway_limits
from orders.entrypoints.limits import (
    BodySizeLimit,
    ClientRateLimiter,
    RateLimitedError,
    check_customer_limits,
    client_rate_limiter,
    customer_lock_key,
)
from orders.testing import GatewayHarness, ManualClock, assert_problem, new_order

# -- body size ---------------------------------------------------------------------------------


def size_app(max_bytes: int = 100) -> tuple[FastAPI, list[int]]:
    """An app echoing the size of what it read; `seen` records what reached it."""
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
    seen: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"size": len(body)}

    @app.post("/model")
    async def model(body: dict[str, str]) -> dict[str, int]:
        seen.append(len(body))
        return {"fields": len(body)}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app, seen


def chunks(*parts: bytes) -> Iterator[bytes]:
    """A body sent chunked: no Content-Length."""
    yield from parts


def test_a_body_at_the_limit_passes() -> None:
    app, seen = size_app()
    with TestClient(app) as client:
        response = client.post("/echo", content=b"x" * 100)
        streamed = client.post("/echo", content=chunks(b"x" * 60, b"x" * 40))
        assert client.get("/health").status_code == 200
    assert response.json() == streamed.json() == {"size": 100}
    assert seen == [100, 100]


def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    app, seen = size_app()
    with TestClient(app) as client:
        response = client.post("/echo", content=b"x" * 101)
    body = assert_problem(response, 413, "payload-too-large")
    assert body["max_bytes"] == 100
    assert body["instance"] == "/echo"
    assert seen == []


@pytest.mark.parametrize("path", ["/echo", "/model"])
def test_a_streamed_body_is_refused_once_it_grows_over_the_limit(path: str) -> None:
    app, seen = size_app()
    with TestClient(app) as client:
        response = client.post(path, content=chunks(b'{"a": "', b"x" * 90, b'"}', b" " * 10))
    assert "content-length" not in response.request.headers
    # FastAPI's own answer to the interrupted body (a 400) is replaced by the 413.
    assert_problem(response, 413, "payload-too-large")
    assert seen == []


async def test_the_limit_is_enforced_on_raw_chunks_and_the_excess_is_never_read() -> None:
    reads: list[bytes] = []

    async def app(scope: object, receive: object, send: object) -> None:
        while True:
            message = await receive()  # type: ignore[operator]
            reads.append(message.get("body", b""))
            if not message.get("more_body"):
                break

    incoming: list[Message] = [
        {"type": "http.request", "body": b"x" * 60, "more_body": True},
        {"type": "http.request", "body": b"x" * 60, "more_body": True},
        {"type": "http.request", "body": b"x" * 60, "more_body": False},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    await BodySizeLimit(app, max_bytes=100)(scope, receive, send)

    assert reads == [b"x" * 60]  # the chunk that went over never reached the app
    assert len(incoming) == 1  # nor was the rest read
    assert sent[0]["status"] == 413
    assert (b"content-type", PROBLEM_JSON.encode()) in sent[0]["headers"]


# -- rate per client ---------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """Stands in for the `time` module of limits' memory storage and of our limiter."""
    clock = ManualClock(1_000_000.0)
    monkeypatch.setattr(limits.storage.memory, "time", SimpleNamespace(time=clock))
    monkeypatch.setattr(gateway_limits, "time", SimpleNamespace(time=clock))
    return clock


def two_requests_per_minute(clock: ManualClock, seconds_apart: float) -> ClientRateLimiter:
    """A limiter of 2/minute, and shop-1's two requests, `seconds_apart`."""
    limiter = ClientRateLimiter("2/minute")
    limiter.check_rate("shop-1")
    clock.now += seconds_apart
    limiter.check_rate("shop-1")
    return limiter


def test_a_client_over_its_rate_is_told_when_to_come_back(clock: ManualClock) -> None:
    limiter = two_requests_per_minute(clock, 10)
    clock.now += 10.5

    with pytest.raises(RateLimitedError) as refused:
        limiter.check_rate("shop-1")

    error = refused.value
    assert (error.status, error.kind) == (429, "rate-limited")
    assert error.retry_after == 40  # the first request leaves the window in 39.5 s: round up
    assert error.extensions["retry_after"] == 40
    assert error.extensions["limit"] == "2 per 1 minute"


def test_the_window_moves_on(clock: ManualClock) -> None:
    limiter = two_requests_per_minute(clock, 30)
    clock.now += 29.9
    with pytest.raises(RateLimitedError) as refused:
        limiter.check_rate("shop-1")
    assert refused.value.retry_after == 1  # 0.1 s left: never less than 1
    clock.now += 0.2
    limiter.check_rate("shop-1")  # the first request has left the window
    with pytest.raises(RateLimitedError):
        limiter.check_rate("shop-1")


def test_each_client_has_its_own_window(clock: ManualClock) -> None:
    limiter = ClientRateLimiter("1/second")
    limiter.check_rate("shop-1")
    limiter.check_rate("shop-2")
    with pytest.raises(RateLimitedError):
        limiter.check_rate("shop-1")


def test_a_limit_that_does_not_parse_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="couldn't parse"):
        ClientRateLimiter("lots")


def test_the_process_keeps_one_limiter_per_limit() -> None:
    assert client_rate_limiter("7/second") is client_rate_limiter("7/second")
    assert client_rate_limiter("7/second") is not client_rate_limiter("8/second")


def rate_limited(request: Request, client_id: Annotated[str, Header(alias="X-Client")]) -> str:
    """The dependency as the gateway would use it, once the caller is known."""
    limiter: ClientRateLimiter = request.app.state.limiter
    limiter.check_rate(client_id)
    return client_id


def rate_app(limit: str) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.limiter = ClientRateLimiter(limit)

    @app.get("/things")
    async def things(client_id: Annotated[str, Depends(rate_limited)]) -> dict[str, str]:
        return {"client_id": client_id}

    return app


def test_a_client_over_its_rate_gets_a_429_problem(clock: ManualClock) -> None:
    with TestClient(rate_app("2/minute")) as client:
        responses = [client.get("/things", headers={"X-Client": "shop-1"}) for _ in range(3)]
        other = client.get("/things", headers={"X-Client": "shop-2"})
    assert [r.status_code for r in responses[:2]] == [200, 200]
    assert other.status_code == 200
    body = assert_problem(responses[2], 429, "rate-limited")
    assert body["retry_after"] == 60
    assert "2 per 1 minute" in str(body["detail"])


def test_a_429_carries_retry_after_in_whole_seconds(clock: ManualClock) -> None:
    with TestClient(rate_app("1/minute")) as client:
        client.get("/things", headers={"X-Client": "shop-1"})
        clock.now += 0.5
        refused = client.get("/things", headers={"X-Client": "shop-1"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"  # 59.5 s, rounded up
    assert "headers" not in refused.json()


# -- per customer ------------------------------------------------------------------------------


def stored_order(
    session: Session,
    lines: dict[str, int],
    status: OrderStatus = OrderStatus.PENDING,
    customer_id: str = "c-1",
    client_id: str = "shop-1",
) -> None:
    """An order the customer holds, in `session`'s transaction."""
    order = new_order(lines=lines, status=status, customer_id=customer_id, client_id=client_id)
    session.add(order)
    session.flush()


MAX_OPEN, MAX_UNITS = 3, 10


def check(
    session: Session,
    lines: dict[str, int] | list[tuple[str, int]],
    customer_id: str = "c-1",
    client_id: str = "shop-1",
) -> None:
    pairs = lines.items() if isinstance(lines, dict) else lines
    check_customer_limits(
        session,
        client_id,
        customer_id,
        [RequestedLine(sku, quantity) for sku, quantity in pairs],
        max_open_orders=MAX_OPEN,
        max_quantity_per_sku=MAX_UNITS,
    )


def refusal(session: Session, lines: dict[str, int] | list[tuple[str, int]]) -> ProblemError:
    with pytest.raises(ProblemError) as refused:
        check(session, lines)
    assert (refused.value.status, refused.value.kind) == (422, "customer-limit-exceeded")
    return refused.value


def test_a_customer_may_hold_up_to_the_limits(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        stored_order(session, {"MUG": 4})
        stored_order(session, {"MUG": 3, "TEE": 10})
        check(session, {"MUG": 3})  # the third open order, 10 mugs in all


def test_one_open_order_too_many_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        for _ in range(3):
            stored_order(session, {"MUG": 1})
        error = refusal(session, {"TEE": 1})
    assert error.extensions["limit"] == "max-open-orders"
    assert (error.extensions["max"], error.extensions["current"]) == (3, 3)
    assert error.extensions["errors"] == [
        {"field": "customer.id", "message": "too many open orders"}
    ]


def test_finished_orders_and_other_customers_do_not_count(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        for status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.RETURNED):
            stored_order(session, {"MUG": 10}, status=status)
        stored_order(session, {"MUG": 10}, customer_id="c-2")
        stored_order(session, {"MUG": 10}, client_id="shop-2")  # another shop's c-1
        stored_order(session, {"MUG": 1}, status=OrderStatus.FULFILLING)
        stored_order(session, {"MUG": 1}, status=OrderStatus.RETURN_REQUESTED)
        check(session, {"MUG": 8})
        # Both unfinished orders count: FULFILLING and RETURN_REQUESTED.
        assert refusal(session, {"MUG": 9}).extensions["current"] == 2


def test_too_many_units_of_a_sku_are_refused_naming_the_sku_and_line(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        stored_order(session, {"MUG": 6, "TEE": 1})
        # Lines of one SKU add up, and the units already held count.
        error = refusal(session, [("TEE", 1), ("MUG", 2), ("MUG", 3)])
    assert error.extensions["limit"] == "max-quantity-per-sku"
    assert error.extensions["sku"] == "MUG"
    assert (error.extensions["current"], error.extensions["requested"]) == (6, 5)
    assert error.extensions["errors"] == [
        {
            "field": "lines.1.quantity",
            "message": "over the per-customer limit for this SKU",
            "sku": "MUG",
        }
    ]
    assert "11 units of MUG" in error.detail


def test_a_single_order_over_the_sku_limit_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert refusal(session, {"MUG": 11}).extensions["sku"] == "MUG"


def test_concurrent_orders_of_one_customer_are_counted_one_after_the_other(
    sessions: sessionmaker[Session],
) -> None:
    """Two transactions placing the last allowed order: the second sees the first's."""
    refused: list[ProblemError] = []

    def second_order() -> None:
        with sessions() as session:
            try:
                check(session, {"MUG": 1})
            except ProblemError as error:
                refused.append(error)

    with sessions() as first:
        stored_order(first, {"MUG": 1})
        stored_order(first, {"MUG": 1})
        first.commit()
        check(first, {"MUG": 1})  # the third: allowed, and locks the customer
        stored_order(first, {"MUG": 1})
        racing = threading.Thread(target=second_order)
        racing.start()
        first.commit()
    racing.join(timeout=60)
    assert not racing.is_alive()
    assert [error.extensions["limit"] for error in refused] == ["max-open-orders"]


def test_postgresql_serialises_a_customer_with_an_advisory_lock(postgresql_url: str) -> None:
    key = customer_lock_key("shop-1", "c-1")
    try_lock = text("SELECT pg_try_advisory_xact_lock(:key)")
    with (
        GatewayHarness(postgresql_url) as orders_db,
        orders_db.writes() as holder,
        orders_db.writes() as other,
    ):
        check(holder, {"MUG": 1})
        assert other.scalar(try_lock, {"key": customer_lock_key("shop-1", "c-2")}) is True
        assert other.scalar(try_lock, {"key": key}) is False
        holder.commit()  # the lock ends with the transaction
        other.rollback()
        assert other.scalar(try_lock, {"key": key}) is True


def test_a_refusal_over_http_is_a_422_problem(orders_db: GatewayHarness) -> None:
    app = orders_db.app()

    @app.post("/orders")
    async def place(runtime: RuntimeDep, lines: dict[str, int]) -> dict[str, str]:
        requested = [RequestedLine(sku, quantity) for sku, quantity in lines.items()]
        await runtime.committer.submit(
            lambda uow: check_customer_limits(uow.session, "shop-1", "c-1", requested, 20, 5)
        )
        return {"status": "accepted"}

    with TestClient(app) as client:
        accepted = client.post("/orders", json={"MUG": 5})
        refused = client.post("/orders", json={"MUG": 6})
    assert accepted.status_code == 200
    body = assert_problem(refused, 422, "customer-limit-exceeded")
    assert (body["limit"], body["sku"], body["max"]) == ("max-quantity-per-sku", "MUG", 5)
    assert body["errors"] == [
        {
            "field": "lines.0.quantity",
            "message": "over the per-customer limit for this SKU",
            "sku": "MUG",
        }
    ]


def test_orders_staged_earlier_in_the_same_group_commit_count_too(
    sessions: sessionmaker[Session],
) -> None:
    """The group commit flushes a batch of requests once, at the end: an order staged by an
    earlier request of the batch is not in the database yet, and must still count."""
    with sessions() as session:
        for _ in range(MAX_OPEN):
            session.add(new_order(lines={"MUG": 1}))
        with pytest.raises(ProblemError) as refused:
            check(session, {"MUG": 1})
        assert refused.value.extensions["limit"] == "max-open-orders"
        assert refused.value.extensions["current"] == MAX_OPEN
        session.rollback()
    with sessions() as session:
        session.add(new_order(lines={"MUG": 4}))
        session.add(new_order(lines={"MUG": 4}))
        with pytest.raises(ProblemError) as refused:
            check(session, {"MUG": MAX_UNITS - 7})
        assert refused.value.extensions["limit"] == "max-quantity-per-sku"
        assert refused.value.extensions["current"] == 8
