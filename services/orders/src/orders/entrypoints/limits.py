"""What one storefront client may ask of the gateway: body size, request rate, and how much
one of its customers may hold in open orders (anti-hoarding).

Each refusal is a problem document with a stable type: 413 `payload-too-large`, 429
`rate-limited` (with Retry-After), 422 `customer-limit-exceeded`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import and_, func, select, text
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.problems import ProblemError, problem_response
from orders.adapters.tables import Order, OrderLine
from orders.domain.saga import TERMINAL

_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
BODY_SIZE_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "The request body is over the size limit", "content": _PROBLEM},
}
RATE_LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "The client's rate limit is used up",
        "headers": {
            "Retry-After": {
                "description": "Whole seconds until a request would be accepted",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "content": _PROBLEM,
    },
}
CUSTOMER_LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Invalid request, or the customer's open orders would exceed a limit",
        "content": _PROBLEM,
    },
}
"""For routes' `responses=`, so the OpenAPI document lists what the limits may answer."""

# -- request body size -----------------------------------------------------------------------

DEFAULT_MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    """Pure ASGI middleware: a request body over `max_bytes` is answered 413 unread.

    A declared Content-Length is checked before the app runs; a body without one (chunked)
    is counted as it streams, and the app's own answer is replaced by the 413 once the
    count goes over (the app sees the body end in an error, never the excess bytes)."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the app's answer to a body it could not read: ours replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
            # whatever the app made of the interrupted body, the answer is the 413
        if too_large and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "payload-too-large",
            "Request body too large",
            f"the request body must not exceed {self.max_bytes} bytes",
            scope.get("path", ""),
            max_bytes=self.max_bytes,
        )
        response.headers["Connection"] = "close"  # the rest of the body is never read
        await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses it; count what arrives instead
    return None


# -- per-client request rate -----------------------------------------------------------------


class RateLimitedError(ProblemError):
    """429 with the whole seconds until the next request would be accepted."""

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(
            429,
            "rate-limited",
            "Too many requests",
            f"the rate limit of {limit} per client is used up; retry in {retry_after} s",
            retry_after=retry_after,
            limit=limit,
        )
        self.retry_after = retry_after
        # Sent with the response by the problem handler (kit.problems), like
        # entrypoints.auth's WWW-Authenticate challenge.
        self.headers = {"Retry-After": str(retry_after)}


class ClientRateLimiter:
    """A moving window per client id, in this process's memory (each gateway process
    counts on its own: with N processes a client gets up to N times the limit)."""

    def __init__(self, limit: str) -> None:
        """`limit`: the `limits` notation, e.g. "200/second" or "1000 per minute";
        ValueError if it does not parse."""
        self._item = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @property
    def limit(self) -> str:
        return str(self._item)

    def check_rate(self, client_id: str) -> None:
        """Counts a request of `client_id`; RateLimitedError (429) once the window is full."""
        if self._limiter.hit(self._item, client_id):
            return
        reset_at, _remaining = self._limiter.get_window_stats(self._item, client_id)
        # When the oldest request in the window leaves it; at least 1 s (Retry-After is whole).
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimitedError(retry_after, self.limit)


@functools.cache
def client_rate_limiter(limit: str) -> ClientRateLimiter:
    """The process's limiter for a limit string: settings give the string, every request
    must count against the same windows."""
    return ClientRateLimiter(limit)


# -- per-customer anti-hoarding ----------------------------------------------------------------

DEFAULT_MAX_OPEN_ORDERS = 20
DEFAULT_MAX_QUANTITY_PER_SKU = 100


class SkuQuantity(Protocol):
    """A requested line: `orders.domain.pricing.RequestedLine` is one."""

    @property
    def sku(self) -> str: ...

    @property
    def quantity(self) -> int: ...


def check_customer_limits(
    session: Session,
    client_id: str,
    customer_id: str,
    lines: Iterable[SkuQuantity],
    max_open_orders: int = DEFAULT_MAX_OPEN_ORDERS,
    max_quantity_per_sku: int = DEFAULT_MAX_QUANTITY_PER_SKU,
) -> None:
    """Refuses an order that would give one customer of a client more than
    `max_open_orders` open (not COMPLETED, CANCELLED or RETURNED) orders, or more than
    `max_quantity_per_sku` units of a SKU across them: ProblemError 422
    `customer-limit-exceeded` naming the limit (and the SKU).

    Call it in the placing transaction BEFORE the new order is staged (it counts the
    stored orders plus `lines`). On PostgreSQL it takes a transaction-scoped advisory lock
    per customer, so concurrent orders of one customer (from several gateway processes)
    are counted one after the other; SQLite has a single writer anyway.
    """
    lines = list(lines)
    _lock_customer(session, client_id, customer_id)
    open_orders = and_(
        Order.client_id == client_id,
        Order.customer_id == customer_id,
        Order.status.not_in([status.value for status in TERMINAL]),
    )

    # The group commit stages several requests' orders in one transaction and flushes
    # them once: count the stored orders by query (no autoflush) plus the staged ones.
    staged = [
        order
        for order in session.new
        if isinstance(order, Order)
        and order.client_id == client_id
        and order.customer_id == customer_id
    ]
    with session.no_autoflush:
        stored = session.scalar(select(func.count()).select_from(Order).where(open_orders))
    count = (stored or 0) + len(staged)
    if count + 1 > max_open_orders:
        raise ProblemError(
            422,
            "customer-limit-exceeded",
            "Customer limit exceeded",
            f"customer {customer_id!r} has {count} open orders; at most {max_open_orders} "
            "may be open at once",
            limit="max-open-orders",
            max=max_open_orders,
            current=count,
            errors=[{"field": "customer.id", "message": "too many open orders"}],
        )

    requested: Counter[str] = Counter()
    for line in lines:
        requested[line.sku] += line.quantity
    with session.no_autoflush:
        held_rows = session.execute(
            select(OrderLine.sku, func.sum(OrderLine.quantity))
            .join(Order, Order.order_id == OrderLine.order_id)
            .where(open_orders, OrderLine.sku.in_(requested))
            .group_by(OrderLine.sku)
        )
        held: Counter[str] = Counter({sku: int(units) for sku, units in held_rows})
    for line in (line for order in staged for line in order.lines):
        if line.sku in requested:
            held[line.sku] += line.quantity
    for index, line in enumerate(lines):
        total = held.get(line.sku, 0) + requested[line.sku]
        if total > max_quantity_per_sku:
            raise ProblemError(
                422,
                "customer-limit-exceeded",
                "Customer limit exceeded",
                f"customer {customer_id!r} would hold {total} units of {line.sku} in open "
                f"orders; at most {max_quantity_per_sku} are allowed",
                limit="max-quantity-per-sku",
                max=max_quantity_per_sku,
                sku=line.sku,
                current=held.get(line.sku, 0),
                requested=requested[line.sku],
                errors=[
                    {
                        "field": f"lines.{index}.quantity",
                        "message": "over the per-customer limit for this SKU",
                        "sku": line.sku,
                    }
                ],
            )


def customer_lock_key(client_id: str, customer_id: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit key) that serialises one customer's
    orders while their limits are checked."""
    digest = hashlib.sha256(f"customer-limits\0{client_id}\0{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_customer(session: Session, client_id: str, customer_id: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        key = customer_lock_key(client_id, customer_id)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
