"""Placing an order: price it from the catalog copy, store it, emit OrderPlaced — one commit."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from kit.envelope import Envelope, trace_id_of
from kit.logs import log_context
from kit.metrics import major_units
from kit.unit_of_work import UnitOfWork
from orders import metrics
from orders.adapters.tables import CatalogItem, Order, OrderLine, TimelineEntry
from orders.domain.pricing import CatalogEntry, RequestedLine, ShippingPolicy, quote
from orders.domain.saga import OrderStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlaceOrder:
    # Chosen by the caller before the write: running the command twice (a retried group
    # commit) then fails on the primary key instead of storing a second order.
    order_id: str
    client_id: str  # the storefront client whose API key placed it
    customer_id: str
    customer_email: str
    customer_name: str
    shipping_address: dict[str, Any]
    lines: tuple[RequestedLine, ...]
    payment_token: str
    notes: str | None = None
    client_metadata: dict[str, str] = field(default_factory=dict)
    traceparent: str | None = None
    sales_channel: str = "web"  # not stored on the order: it travels in OrderPlaced (v2) only


def pending_saga(placed_at: datetime, stock_deadline: timedelta) -> dict[str, Any]:
    """The saga columns of an order just placed: PENDING, its stock deadline running. The
    gateway and a replay (`orders.replay`) start every order from these."""
    return {
        "status": OrderStatus.PENDING,
        "placed_at": placed_at,
        "updated_at": placed_at,
        "status_since": placed_at,
        "deadline_at": placed_at + stock_deadline,
        "awaiting": {},
        "retry_attempts": 0,
        "refunded": 0,
    }


def place_order(
    uow: UnitOfWork, command: PlaceOrder, shipping: ShippingPolicy, stock_deadline: timedelta
) -> Order:
    """Stages the order and its OrderPlaced; the caller commits (the gateway group-commits).

    Raises PricingError for unknown or inactive SKUs; nothing is staged then."""
    skus = {line.sku for line in command.lines}
    # The catalog is never written in this session: no need to flush the batch's orders first.
    with uow.session.no_autoflush:
        items = uow.session.scalars(select(CatalogItem).where(CatalogItem.sku.in_(skus)))
        catalog = {
            item.sku: CatalogEntry(item.sku, item.name, item.unit_price, item.currency, item.active)
            for item in items
        }
    priced = quote(command.lines, catalog, shipping)
    now = datetime.now(UTC)
    order = Order(
        order_id=command.order_id,
        client_id=command.client_id,
        customer_id=command.customer_id,
        customer_email=command.customer_email,
        customer_name=command.customer_name,
        shipping_address=command.shipping_address,
        notes=command.notes,
        client_metadata=dict(command.client_metadata),
        currency=priced.currency,
        subtotal=priced.subtotal,
        shipping=priced.shipping,
        total=priced.total,
        **pending_saga(now, stock_deadline),
        returns=[],  # loaded, not lazy: the gateway renders the order after the commit
        lines=[
            OrderLine(
                line_no=n, sku=p.sku, name=p.name, quantity=p.quantity, unit_price=p.unit_price
            )
            for n, p in enumerate(priced.lines, start=1)
        ],
    )
    value, placed_counter = (
        major_units(order.total),
        metrics.orders_placed_amount.labels(order.currency),
    )
    uow.after_commit(metrics.orders_placed.inc)
    uow.after_commit(lambda: placed_counter.inc(value))
    traceparent = command.traceparent if trace_id_of(command.traceparent) else None
    envelope = uow.new_event(
        "OrderPlaced",
        order_placed_payload(order, command.payment_token, command.sales_channel),
        key=order.order_id,
        correlation_id=order.order_id,
        trace_id=trace_id_of(traceparent),
    )
    if traceparent is not None:
        # The request's own traceparent: its span is the parent of all the order causes.
        envelope = replace(envelope, traceparent=traceparent)
    order.trace_id = envelope.trace_id
    order.timeline = [
        TimelineEntry(
            event_id=envelope.event_id,
            event_type="OrderPlaced",
            source="orders",
            occurred_at=now,
            status_after=order.status,
        )
    ]
    uow.session.add(order)
    uow.emit(envelope)
    summary = f"{len(order.lines)} lines, {major_units(order.total):.2f} {order.currency}"
    uow.after_commit(lambda: _log_placed(envelope, summary))
    return order


def _log_placed(envelope: Envelope, summary: str) -> None:
    # After the commit, in the group committer's thread: no request context, so name it here.
    with log_context(
        event_id=envelope.event_id,
        correlation_id=envelope.correlation_id,
        trace_id=envelope.trace_id,
    ):
        log.info("order %s placed: %s", envelope.correlation_id, summary)


def order_placed_payload(order: Order, payment_token: str, sales_channel: str) -> dict[str, Any]:
    address = order.shipping_address
    return {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "customer_email": order.customer_email,
        "customer_name": order.customer_name,
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
            }
            for line in order.lines
        ],
        "currency": order.currency,
        "subtotal": order.subtotal,
        "shipping": order.shipping,
        "total": order.total,
        "shipping_address": {
            "name": address["name"],
            "line1": address["line1"],
            "line2": address.get("line2"),
            "city": address["city"],
            "postal_code": address["postal_code"],
            "region": address.get("region"),
            "country": address["country"],
        },
        "payment_token": payment_token,
        "placed_at": order.placed_at,
        "sales_channel": sales_channel,
    }
