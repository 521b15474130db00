"""`GET /v1/orders`: the caller's orders, newest first, one keyset-paginated page at a time.

Pages are cut by position, not by offset: a cursor holds the (placed_at, order_id) of the
last order handed out, and the next page starts strictly after it in the order
`placed_at DESC, order_id DESC`. order_id breaks ties between orders placed in the same
microsecond, so no order is skipped or repeated; orders placed meanwhile appear on the
first page, not shifted into later ones; and every page costs one index range scan
(client_id, placed_at, order_id), however deep it is.

The lead mounts the route; this module holds the query, the cursor codec, the response
models and the query-parameter dependency.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kit.api import NUL_FREE
from kit.problems import ProblemError
from orders.adapters.tables import Order
from orders.domain.saga import OrderStatus

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# A real cursor is about 110 characters; anything much longer is not one of ours.
MAX_CURSOR_LENGTH = 256

# For the route decorator, so the OpenAPI document lists every status the route answers.
LIST_ORDERS_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "The cursor is not one this API issued (`invalid-cursor`)",
        "content": {"application/problem+json": {"schema": {"type": "object"}}},
    },
}


class OrderSummary(BaseModel):
    order_id: str
    status: str
    cancel_reason: str | None
    customer_id: str
    currency: str
    total: int = Field(description="In minor units of `currency`")
    placed_at: datetime
    completed_at: datetime | None = Field(description="When it was delivered")


class OrderPage(BaseModel):
    items: list[OrderSummary] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; "
        "null on the last page"
    )


@dataclass(frozen=True)
class OrderFilters:
    """All given filters must hold; an empty `statuses` means any status."""

    statuses: frozenset[OrderStatus] = frozenset()
    customer_id: str | None = None
    placed_from: datetime | None = None  # inclusive
    placed_to: datetime | None = None  # exclusive


class Position(NamedTuple):
    """Where a page ended: the last order handed out."""

    placed_at: datetime
    order_id: str


def list_orders(
    session: Session,
    client_id: str,
    filters: OrderFilters,
    limit: int,
    cursor: str | None,
) -> OrderPage:
    """One page of `client_id`'s orders matching `filters`, after `cursor` if given.

    Raises ProblemError 400 `invalid-cursor` for a cursor this module did not issue."""
    after = decode_cursor(cursor) if cursor is not None else None
    query = select(
        Order.order_id,
        Order.status,
        Order.cancel_reason,
        Order.customer_id,
        Order.currency,
        Order.total,
        Order.placed_at,
        Order.completed_at,
    ).where(Order.client_id == client_id)
    if filters.statuses:
        query = query.where(Order.status.in_(sorted(filters.statuses)))
    if filters.customer_id is not None:
        query = query.where(Order.customer_id == filters.customer_id)
    if filters.placed_from is not None:
        query = query.where(Order.placed_at >= filters.placed_from)
    if filters.placed_to is not None:
        query = query.where(Order.placed_at < filters.placed_to)
    if after is not None:
        # `placed_at <= p` alone bounds the index range scan on both databases; the OR
        # then only sorts out the orders that share p's timestamp.
        query = query.where(
            Order.placed_at <= after.placed_at,
            or_(Order.placed_at < after.placed_at, Order.order_id < after.order_id),
        )
    # One row more than asked tells whether another page follows, without a COUNT.
    query = query.order_by(Order.placed_at.desc(), Order.order_id.desc()).limit(limit + 1)
    rows = session.execute(query).all()
    items = [OrderSummary.model_validate(row._asdict()) for row in rows[:limit]]
    next_cursor = (
        encode_cursor(Position(items[-1].placed_at, items[-1].order_id))
        if len(rows) > limit
        else None
    )
    return OrderPage(items=items, next_cursor=next_cursor)


# The cursor carries a checksum, not a keyed signature: it holds nothing secret (a position
# among the caller's own orders) and a forged one could only move within them, because the
# query always filters on the caller's client_id. The checksum makes a garbled or truncated
# cursor a 400 instead of a silently wrong page.
_CURSOR_VERSION = b"c1"
_CHECKSUM_BYTES = 8
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def encode_cursor(position: Position) -> str:
    payload = f"{position.placed_at.astimezone(UTC).isoformat()}|{position.order_id}".encode()
    token = _CURSOR_VERSION + _checksum(payload) + payload
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> Position:
    """The position in `cursor`; ProblemError 400 `invalid-cursor` if it is not one of ours."""
    if len(cursor) > MAX_CURSOR_LENGTH or not _BASE64URL.fullmatch(cursor):
        raise _invalid_cursor()
    try:
        token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise _invalid_cursor() from None
    version, rest = token[: len(_CURSOR_VERSION)], token[len(_CURSOR_VERSION) :]
    checksum, payload = rest[:_CHECKSUM_BYTES], rest[_CHECKSUM_BYTES:]
    if version != _CURSOR_VERSION or not hmac.compare_digest(checksum, _checksum(payload)):
        raise _invalid_cursor()
    try:
        placed_at_text, order_id = payload.decode().split("|", 1)
        placed_at = datetime.fromisoformat(placed_at_text)
    except ValueError:
        raise _invalid_cursor() from None
    if placed_at.tzinfo is None or not order_id:
        raise _invalid_cursor()
    return Position(placed_at, order_id)


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(_CURSOR_VERSION + payload).digest()[:_CHECKSUM_BYTES]


def _invalid_cursor() -> ProblemError:
    return ProblemError(
        400,
        "invalid-cursor",
        "Invalid cursor",
        "The cursor was not issued by this API or was altered; "
        "start again without `cursor` or use a page's `next_cursor` unchanged.",
    )


@dataclass(frozen=True)
class OrderListQuery:
    filters: OrderFilters
    limit: int
    cursor: str | None


def order_list_query(
    status: Annotated[
        list[str] | None,
        Query(
            description="Only orders in these statuses: repeat the parameter or separate "
            f"with commas. One of {', '.join(OrderStatus)}.",
        ),
    ] = None,
    customer_id: Annotated[
        str | None,
        Query(min_length=1, max_length=100, pattern=NUL_FREE, description="Only this customer's"),
    ] = None,
    placed_from: Annotated[
        AwareDatetime | None,
        Query(description="Placed at or after (ISO 8601 with an offset, e.g. 2025-01-31T00:00Z)"),
    ] = None,
    placed_to: Annotated[
        AwareDatetime | None, Query(description="Placed before (ISO 8601 with an offset)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Orders per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(description="A previous page's `next_cursor`, unchanged; empty: the first page"),
    ] = None,
) -> OrderListQuery:
    """The query parameters of `GET /v1/orders`, as a FastAPI dependency.

    Unknown statuses and an empty date range (placed_from after placed_to) are 422 problems
    naming the parameter; the cursor is checked by `list_orders`. An empty cursor means the
    first page, as many clients send `cursor=` for a null `next_cursor`."""
    if placed_from is not None and placed_to is not None and placed_from > placed_to:
        raise _invalid_query("placed_from", "must not be after placed_to")
    filters = OrderFilters(parse_statuses(status or []), customer_id, placed_from, placed_to)
    return OrderListQuery(filters, limit, cursor or None)


OrderListQueryDep = Annotated[OrderListQuery, Depends(order_list_query)]
_STATUS_NAMES = frozenset(status.value for status in OrderStatus)


def parse_statuses(values: list[str]) -> frozenset[OrderStatus]:
    """`["PAID,FULFILLING", "COMPLETED"]` -> those three; empty items are ignored."""
    names = [name.strip() for value in values for name in value.split(",")]
    unknown = sorted({name for name in names if name and name not in _STATUS_NAMES})
    if unknown:
        # Echo a bounded part of what was sent: the detail is no place for a 10 kB query.
        shown = ", ".join(name[:30] for name in unknown[:5])
        raise _invalid_query("status", f"unknown status {shown}; one of {', '.join(OrderStatus)}")
    return frozenset(OrderStatus(name) for name in names if name)


def _invalid_query(parameter: str, message: str) -> ProblemError:
    # Shaped like the kit's own validation problems, so clients handle both alike.
    field = f"query.{parameter}"
    return ProblemError(
        422,
        "validation-error",
        "The request is invalid",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )
