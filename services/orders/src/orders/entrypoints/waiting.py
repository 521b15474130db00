"""Long-poll on one order: `GET /v1/orders/{id}?wait=30&status=PAID`.

The answer comes as soon as the order's status is no longer PAID, or after 30 seconds
with the order unchanged; 200 with the current order either way, so the client compares
`status` with what it sent to tell which. A client follows an order with a loop: GET with
the last status it saw, act on the answer, repeat. Without `status` the request waits
for the next change from whatever the status is when it arrives (passing `status` is what
guarantees that no change between two requests goes unnoticed); `wait=0`, the default,
answers at once. An order in a status it can never leave (CANCELLED) is answered at once.
The server may answer before `wait` is up (a configured maximum, a shutdown); clients
treat that like a timeout.

Long-poll rather than Server-Sent Events: a long-poll is a plain GET that returns one
JSON document, so it passes every proxy, load balancer and HTTP client library unchanged,
carries the same authentication, problem documents and OpenAPI description as every other
request, and needs no reconnection or event-id bookkeeping. The cost is one request per
change, which is nothing at an order's pace (a handful of changes over minutes).

While waiting, the request polls the order's status through a fresh read session every
`poll_s` in a worker thread: a primary-key lookup, never blocking the event loop. Changes
are made by the saga in the worker process, so there is no in-process signal to wait on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.adapters.tables import Order
from orders.domain.saga import TRANSITIONS, OrderStatus

MAX_WAIT_S = 60.0
DEFAULT_POLL_S = 0.1
# Statuses the saga has no transition out of: waiting for them to change is pointless.
FINAL_STATUSES = frozenset(OrderStatus) - {status for status, _ in TRANSITIONS}


class HasStatus(Protocol):
    @property
    def status(self) -> str: ...


T = TypeVar("T", bound=HasStatus)


async def wait_for_change(
    read: Callable[[], T | None],
    known_status: str | None,
    wait_s: float,
    poll_s: float = DEFAULT_POLL_S,
    *,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> T | None:
    """The order as soon as its status differs from `known_status`, else as it is after
    `wait_s` seconds; None if `read` finds no order (the caller answers 404).

    `read` runs in a worker thread and must open its own session each call (a long-lived
    SQLite read transaction would keep seeing its first snapshot). `known_status=None`
    waits for a change from the status at the first read. `disconnected` (e.g.
    `request.is_disconnected`) is checked between polls: a client that went away stops the
    polling and gets the order as last read.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    current = await asyncio.to_thread(read)
    if current is None:
        return None
    known = current.status if known_status is None else known_status
    while current.status == known and current.status not in FINAL_STATUSES:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.sleep(min(poll_s, remaining))
        if disconnected is not None and await disconnected():
            break
        latest = await asyncio.to_thread(read)
        if latest is None:
            return None
        current = latest
    return current


@dataclass(frozen=True)
class OrderStatusView:
    """What each poll reads: the status only, not the order's lines and timeline."""

    order_id: str
    status: str


def status_reader(
    session_factory: Callable[[], Session], order_id: str, client_id: str
) -> Callable[[], OrderStatusView | None]:
    """A `read` for `wait_for_change`: the status of `client_id`'s order `order_id`, or None
    if there is no such order or it is another client's."""

    def read() -> OrderStatusView | None:
        with session_factory() as session:
            status = session.scalar(
                select(Order.status).where(Order.order_id == order_id, Order.client_id == client_id)
            )
        return None if status is None else OrderStatusView(order_id, status)

    return read


@dataclass(frozen=True)
class WaitQuery:
    wait_s: float
    known_status: OrderStatus | None


def wait_query(
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="Seconds to wait for the status to change from `status` before "
            "answering with the order unchanged (long-poll); 0 answers at once. The server "
            "may answer earlier; 200 either way.",
        ),
    ] = 0,
    status: Annotated[
        OrderStatus | None,
        Query(
            description="The status the client already knows; without it, `wait` waits for "
            "the next change from the current status"
        ),
    ] = None,
) -> WaitQuery:
    """The long-poll query parameters of `GET /v1/orders/{id}`, as a FastAPI dependency."""
    return WaitQuery(wait, status)


WaitQueryDep = Annotated[WaitQuery, Depends(wait_query)]
