"""Long-poll waiting for an order's status to change: with scripted reads, then real databases."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Header, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import update

from kit.api import RuntimeDep
from kit.problems import ProblemError
from orders.adapters.tables import Order
from orders.domain.saga import OrderStatus
from orders.entrypoints.waiting import (
    FINAL_STATUSES,
    OrderStatusView,
    WaitQueryDep,
    status_reader,
    wait_for_change,
)
from orders.testing import OTHER_SHOP, SHOP, GatewayHarness, assert_problem, new_order

# Long enough that a test returning well before it shows an early return, never a timeout.
LONG_WAIT_S = 30.0


@dataclass
class Snapshot:
    status: str


class ScriptedReads:
    """Each read returns the next status of the script, then repeats the last one."""

    def __init__(self, *statuses: str | None) -> None:
        self.script = list(statuses)
        self.reads = 0

    def __call__(self) -> Snapshot | None:
        status = self.script[min(self.reads, len(self.script) - 1)]
        self.reads += 1
        return None if status is None else Snapshot(status)


def test_only_cancelled_is_final() -> None:
    assert {OrderStatus.CANCELLED} == FINAL_STATUSES


async def test_answers_at_once_when_the_status_already_differs() -> None:
    reads = ScriptedReads("PAID")

    seen = await wait_for_change(reads, "RESERVED", LONG_WAIT_S)

    assert seen == Snapshot("PAID")
    assert reads.reads == 1


@pytest.mark.parametrize("known", ["PAID", None])
async def test_wait_zero_answers_at_once_with_the_order_as_it_is(known: str | None) -> None:
    reads = ScriptedReads("PAID", "FULFILLING")

    seen = await wait_for_change(reads, known, 0)

    assert seen == Snapshot("PAID")
    assert reads.reads == 1


async def test_answers_when_a_later_read_sees_another_status() -> None:
    reads = ScriptedReads("PAID", "PAID", "PAID", "FULFILLING", "COMPLETED")

    started = time.monotonic()
    seen = await wait_for_change(reads, "PAID", LONG_WAIT_S, poll_s=0.01)

    assert seen == Snapshot("FULFILLING")
    assert reads.reads == 4
    assert time.monotonic() - started < LONG_WAIT_S / 2


async def test_without_a_known_status_waits_for_a_change_from_the_first_read() -> None:
    reads = ScriptedReads("RESERVED", "RESERVED", "PAID")

    seen = await wait_for_change(reads, None, LONG_WAIT_S, poll_s=0.01)

    assert seen == Snapshot("PAID")
    assert reads.reads == 3


async def test_answers_after_the_wait_with_the_unchanged_order() -> None:
    reads = ScriptedReads("PAID")

    started = time.monotonic()
    seen = await wait_for_change(reads, "PAID", 0.3, poll_s=0.05)

    assert seen == Snapshot("PAID")
    assert 0.3 <= time.monotonic() - started < 5
    assert 2 <= reads.reads <= 8  # it polled meanwhile, about every poll_s, not in a busy loop


async def test_a_cancelled_order_is_answered_at_once_as_it_cannot_change() -> None:
    reads = ScriptedReads("CANCELLED")

    seen = await wait_for_change(reads, "CANCELLED", LONG_WAIT_S)

    assert seen == Snapshot("CANCELLED")
    assert reads.reads == 1


@pytest.mark.parametrize("script", [(None,), ("PAID", "PAID", None)])
async def test_a_missing_order_is_none(script: tuple[str | None, ...]) -> None:
    assert await wait_for_change(ScriptedReads(*script), "PAID", LONG_WAIT_S, poll_s=0.01) is None


async def test_a_client_that_went_away_stops_the_wait() -> None:
    reads = ScriptedReads("PAID")
    checks = 0

    async def disconnected() -> bool:
        nonlocal checks
        checks += 1
        return checks >= 3

    seen = await wait_for_change(reads, "PAID", LONG_WAIT_S, poll_s=0.01, disconnected=disconnected)

    assert seen == Snapshot("PAID")
    assert (checks, reads.reads) == (3, 3)  # the first read, then one per check still there


async def test_reads_run_off_the_event_loop() -> None:
    # The read blocks until the event loop releases it: on the loop's thread it would never be.
    release = threading.Event()
    released_in_time: list[bool] = []

    def blocking_read() -> Snapshot:
        released_in_time.append(release.wait(timeout=10))
        return Snapshot("PAID")

    # The task's first step (the read) runs first; the release only if the loop is free.
    waiting = asyncio.create_task(wait_for_change(blocking_read, "RESERVED", LONG_WAIT_S))
    asyncio.get_running_loop().call_soon(release.set)

    assert await waiting == Snapshot("PAID")
    assert released_in_time == [True]


# -- on real databases ---------------------------------------------------------------------


class Store(GatewayHarness):
    """The orders tables, where the saga moves an order on while a request waits."""

    def set_status(self, order_id: str, status: str) -> None:
        with self.writes.begin() as session:
            session.execute(update(Order).where(Order.order_id == order_id).values(status=status))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """The shop's PAID order-1, and another shop's order."""
    with Store(database_url) as store:
        store.add(
            new_order("order-1", status=OrderStatus.PAID),
            new_order("theirs", client_id=OTHER_SHOP, status=OrderStatus.PAID),
        )
        yield store


class ReadsSignal:
    """Wraps a read; `after(n)` is set once n reads have returned."""

    def __init__(self, read: Callable[[], OrderStatusView | None]) -> None:
        self._read = read
        self._count = 0
        self._lock = threading.Lock()
        self._events: dict[int, threading.Event] = {}

    def after(self, n: int) -> threading.Event:
        with self._lock:
            return self._events.setdefault(n, threading.Event())

    def __call__(self) -> OrderStatusView | None:
        view = self._read()
        with self._lock:
            self._count += 1
            self._events.setdefault(self._count, threading.Event()).set()
        return view


async def test_a_change_made_by_another_thread_ends_the_wait(store: Store) -> None:
    read = ReadsSignal(status_reader(store.reads, "order-1", SHOP))

    def saga_moves_on() -> None:
        # Only once the waiter has seen PAID twice (its first read and one poll).
        if read.after(2).wait(timeout=LONG_WAIT_S):
            store.set_status("order-1", OrderStatus.FULFILLING)

    saga = threading.Thread(target=saga_moves_on)
    saga.start()
    started = time.monotonic()
    seen = await wait_for_change(read, OrderStatus.PAID, LONG_WAIT_S, poll_s=0.02)
    saga.join()

    assert seen == OrderStatusView("order-1", "FULFILLING")
    assert time.monotonic() - started < LONG_WAIT_S / 2


async def test_the_wait_ends_with_the_unchanged_order(store: Store) -> None:
    started = time.monotonic()
    seen = await wait_for_change(
        status_reader(store.reads, "order-1", SHOP), OrderStatus.PAID, 0.3, poll_s=0.05
    )

    assert seen == OrderStatusView("order-1", "PAID")
    assert time.monotonic() - started >= 0.3


async def test_wait_zero_reads_the_current_status(store: Store) -> None:
    store.set_status("order-1", OrderStatus.COMPLETED)

    seen = await wait_for_change(status_reader(store.reads, "order-1", SHOP), None, 0)

    assert seen == OrderStatusView("order-1", "COMPLETED")


async def test_another_clients_order_is_not_found(store: Store) -> None:
    assert await wait_for_change(status_reader(store.reads, "theirs", SHOP), None, 0) is None
    assert await wait_for_change(status_reader(store.reads, "nope", SHOP), None, 0) is None


# -- over HTTP -----------------------------------------------------------------------------


class StatusOut(BaseModel):
    order_id: str
    status: str


class Requests:
    """The reads of each request that reached the route, in arrival order."""

    def __init__(self) -> None:
        self.reads: list[ReadsSignal] = []
        self._first = threading.Event()

    def arrived(self, read: ReadsSignal) -> None:
        self.reads.append(read)
        self._first.set()

    def first(self) -> ReadsSignal:
        assert self._first.wait(timeout=LONG_WAIT_S), "no request reached the route"
        return self.reads[0]


def gateway(requests: Requests) -> APIRouter:
    """The long-poll as the lead mounts it, the caller named by a header instead of a key;
    the full order would be read after the wait."""
    router = APIRouter()

    @router.get("/v1/orders/{order_id}", response_model=StatusOut)
    async def get_order(
        order_id: str,
        waiting: WaitQueryDep,
        request: Request,
        runtime: RuntimeDep,
        x_client: Annotated[str, Header()],
    ) -> StatusOut:
        read = ReadsSignal(status_reader(runtime.read_session_factory, order_id, x_client))
        requests.arrived(read)
        seen = await wait_for_change(
            read,
            waiting.known_status,
            waiting.wait_s,
            poll_s=0.02,
            disconnected=request.is_disconnected,
        )
        if seen is None:
            raise ProblemError(404, "order-not-found", "Order not found", f"no order {order_id}")
        return StatusOut(order_id=seen.order_id, status=seen.status)

    return router


@pytest.fixture
def http(store: Store) -> Iterator[tuple[TestClient, Requests]]:
    requests = Requests()
    with TestClient(store.app(gateway(requests)), headers={"X-Client": SHOP}) as client:
        yield client, requests


def test_a_long_poll_answers_200_when_the_status_changes(
    store: Store, http: tuple[TestClient, Requests]
) -> None:
    client, requests = http

    def saga_moves_on() -> None:
        # Only once the request has seen PAID twice (its first read and one poll).
        if requests.first().after(2).wait(timeout=LONG_WAIT_S):
            store.set_status("order-1", OrderStatus.FULFILLING)

    saga = threading.Thread(target=saga_moves_on)
    saga.start()
    started = time.monotonic()
    response = client.get("/v1/orders/order-1", params={"wait": LONG_WAIT_S, "status": "PAID"})
    saga.join()

    assert response.status_code == 200
    assert response.json() == {"order_id": "order-1", "status": "FULFILLING"}
    assert time.monotonic() - started < LONG_WAIT_S / 2


def test_a_long_poll_answers_200_with_the_unchanged_order_after_the_wait(
    http: tuple[TestClient, Requests],
) -> None:
    client, _ = http

    started = time.monotonic()
    response = client.get("/v1/orders/order-1", params={"wait": 0.3, "status": "PAID"})

    assert response.status_code == 200
    assert response.json()["status"] == "PAID"
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("params", [{}, {"wait": 0}, {"wait": 0, "status": "PAID"}])
def test_without_wait_the_order_comes_at_once(
    http: tuple[TestClient, Requests], params: dict[str, Any]
) -> None:
    client, requests = http

    response = client.get("/v1/orders/order-1", params=params)

    assert response.json()["status"] == "PAID"
    assert requests.first().after(1).is_set() and not requests.first().after(2).is_set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"wait": 61}, "query.wait"),
        ({"wait": -1}, "query.wait"),
        ({"wait": "soon"}, "query.wait"),
        ({"wait": 1, "status": "SHIPPED"}, "query.status"),
    ],
)
def test_invalid_wait_parameters_are_422_problems(
    http: tuple[TestClient, Requests], params: dict[str, Any], field: str
) -> None:
    client, requests = http

    response = client.get("/v1/orders/order-1", params=params)

    body = assert_problem(response, 422, "validation-error")
    assert [error["field"] for error in body["errors"]] == [field]
    assert requests.reads == []


def test_waiting_on_another_clients_order_is_a_404_at_once(
    http: tuple[TestClient, Requests],
) -> None:
    client, _ = http

    response = client.get("/v1/orders/theirs", params={"wait": LONG_WAIT_S, "status": "PAID"})

    assert_problem(response, 404, "order-not-found")
