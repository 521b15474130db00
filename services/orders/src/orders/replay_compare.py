"""Comparing a rebuilt orders read model with the live one: what "the same order" means.

Per order: status, cancel reason, totals, refunded, payment, shipment and tracking, the
acknowledgements it still waits for, lines, returns, and the timeline as far as the log
records it (`replay_timeline`: each source's events in order, every decision the saga sent
something on whole — not the order in which the live saga happened to read two services'
events that raced to it). Not compared: when things happened (a replay runs at another
time) and what OrderPlaced does not carry (the storefront client, the customer's details
and address, notes, metadata).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from orders.adapters.tables import Order
from orders.replay_timeline import TimelineStep, timeline_differences


@dataclass(frozen=True)
class OrderView:
    """What "the same order" means: everything the saga decides, not when it ran.

    Wall-clock bookkeeping (updated_at, status_since, completed_at, the times of the saga's
    own timeline entries, deadline_at, retry_at) records when the saga ran, which a replay
    cannot be; nor is the storefront client, which OrderPlaced does not carry.
    """

    status: str
    cancel_reason: str | None
    currency: str
    subtotal: int
    shipping: int
    total: int
    refunded: int
    payment_id: str | None
    shipment_id: str | None
    carrier: str | None
    tracking_number: str | None
    awaiting: tuple[tuple[str, str], ...]
    lines: tuple[tuple[int, str, str, int, int], ...]
    returns: tuple[tuple[Any, ...], ...]
    timeline: tuple[TimelineStep, ...]

    @classmethod
    def of(cls, order: Order) -> OrderView:
        steps = [
            TimelineStep(e.event_id, e.event_type, e.source, e.status_after, e.note, position=n)
            for n, e in enumerate(order.timeline, start=1)
        ]
        return cls(
            status=order.status,
            cancel_reason=order.cancel_reason,
            currency=order.currency,
            subtotal=order.subtotal,
            shipping=order.shipping,
            total=order.total,
            refunded=order.refunded,
            payment_id=order.payment_id,
            shipment_id=order.shipment_id,
            carrier=order.carrier,
            tracking_number=order.tracking_number,
            awaiting=tuple(sorted((order.awaiting or {}).items())),
            lines=tuple((x.line_no, x.sku, x.name, x.quantity, x.unit_price) for x in order.lines),
            returns=tuple(
                (
                    r.return_id,
                    r.status,
                    _units(r.lines),
                    _units(r.received_lines),
                    r.refund_id,
                    r.refund_amount,
                    r.carrier,
                    r.label_reference,
                )
                for r in sorted(order.returns, key=lambda r: r.return_id)
            ),
            timeline=tuple(steps),
        )


def _units(lines: list[dict[str, Any]] | None) -> tuple[tuple[str, int], ...] | None:
    if lines is None:
        return None
    units = Counter[str]()
    for line in lines:
        units[line["sku"]] += int(line["quantity"])
    return tuple(sorted(units.items()))


def read_orders(session: Session, order_ids: Collection[str] | None = None) -> dict[str, OrderView]:
    """The orders (all, or those of `order_ids` the database has) as comparable views."""
    query = select(Order).options(
        selectinload(Order.lines), selectinload(Order.returns), selectinload(Order.timeline)
    )
    if order_ids is not None:
        query = query.where(Order.order_id.in_(list(order_ids)))
    return {order.order_id: OrderView.of(order) for order in session.scalars(query)}


def differences(live: Mapping[str, OrderView], replayed: Mapping[str, OrderView]) -> list[str]:
    """Every way the replayed orders differ from the live ones, one line each; none: equal."""
    found: list[str] = []
    for order_id in sorted(set(live) | set(replayed)):
        if order_id not in replayed:
            found.append(f"order {order_id}: not rebuilt by the replay")
            continue
        if order_id not in live:
            found.append(f"order {order_id}: rebuilt, but not in the live read model")
            continue
        before, after = live[order_id], replayed[order_id]
        for field in fields(OrderView):
            if field.name == "timeline":
                continue
            a, b = getattr(before, field.name), getattr(after, field.name)
            if a != b:
                found.append(f"order {order_id}: {field.name} is {a!r} live, {b!r} replayed")
        found += [
            f"order {order_id}: {line}"
            for line in timeline_differences(before.timeline, after.timeline)
        ]
    return found
