"""Comparing a rebuilt orders read model with the live one: what "the same order" means.

Per order: status, cancel reason, totals, refunded, payment, shipment and tracking, the
acknowledgements it still waits for, lines, returns, and the timeline as the sequence of
(event id, event type, source, status after, note), with two exceptions below. Not
compared: when things happened (a replay runs at another time) and the storefront client,
which OrderPlaced does not carry.

Two things the log cannot say are left out of "the same": when the live saga read an
informational event (a NotificationSent) against the other services' events — those
entries are compared as a set — and in which order it read two entries that left the
status as it was (see `_stretches`). Both are races between topics on the way to the
orders consumer. What the saga decided is still compared: every status change in its
place, the status after every entry, what the order awaits at the end, its returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from orders.adapters.tables import Order
from orders.domain.saga import INFORMATIONAL


@dataclass(frozen=True)
class TimelineStep:
    event_id: str
    event_type: str
    source: str
    status_after: str
    note: str | None

    @property
    def informational(self) -> bool:
        return self.event_type in INFORMATIONAL

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return (
            f"{self.event_type} from {self.source} -> {self.status_after}{note} [{self.event_id}]"
        )


@dataclass(frozen=True)
class OrderView:
    """What "the same order" means: everything the saga decides, not when it ran.

    Wall-clock bookkeeping (updated_at, status_since, completed_at, the times of the saga's
    own timeline entries, deadline_at, retry_at) records when the saga ran, which a replay
    cannot be; nor is the storefront client, which OrderPlaced does not carry.

    `timeline` holds the entries that are the saga's path, in order; `told` the informational
    ones (event id, type, source), sorted: where those fell among the others was a race."""

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
    told: tuple[tuple[str, str, str], ...]

    @classmethod
    def of(cls, order: Order) -> OrderView:
        steps = [
            TimelineStep(e.event_id, e.event_type, e.source, e.status_after, e.note)
            for e in order.timeline
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
            timeline=tuple(step for step in steps if not step.informational),
            told=tuple(
                sorted((s.event_id, s.event_type, s.source) for s in steps if s.informational)
            ),
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
            if field.name in ("timeline", "told"):
                continue
            a, b = getattr(before, field.name), getattr(after, field.name)
            if a != b:
                found.append(f"order {order_id}: {field.name} is {a!r} live, {b!r} replayed")
        found += [f"order {order_id}: {line}" for line in _timeline_differences(before, after)]
        found += [f"order {order_id}: {line}" for line in _told_differences(before, after)]
    return found


def _timeline_differences(live: OrderView, replayed: OrderView) -> list[str]:
    live_path, replayed_path = _stretches(live.timeline), _stretches(replayed.timeline)
    statuses = [s.status for s in live_path], [s.status for s in replayed_path]
    if statuses[0] != statuses[1]:
        return [
            f"the saga went {' -> '.join(statuses[0])} live, {' -> '.join(statuses[1])} replayed"
        ]
    found = []
    for a, b in zip(live_path, replayed_path, strict=True):
        if a.steps != b.steps:
            only = [
                f"only {which}: "
                + ", ".join(map(str, sorted((x.steps - y.steps).elements(), key=str)))
                for which, x, y in (("live", a, b), ("replayed", b, a))
                if x.steps - y.steps
            ]
            found.append(f"timeline entries {a.first}-{a.last} ({a.status}): {'; '.join(only)}")
    return found


@dataclass(frozen=True)
class _Stretch:
    """Consecutive timeline entries after which the order had one status."""

    status: str
    first: int
    last: int
    steps: Counter[TimelineStep]


def _stretches(timeline: tuple[TimelineStep, ...]) -> list[_Stretch]:
    """The path as stretches of one status. Within a stretch the entries are compared, their
    order is not: entries that leave the status as it was and send nothing (a late forward
    step during a compensation, an acknowledgement that is not the last one) answer
    different messages on different topics, and which of them the live saga read first the
    log does not record. Everything that moves the saga starts a stretch, so its place is
    compared; the status after every entry is too."""
    stretches: list[_Stretch] = []
    for n, step in enumerate(timeline, start=1):
        if stretches and stretches[-1].status == step.status_after:
            last = stretches[-1]
            last.steps[step] += 1
            stretches[-1] = _Stretch(last.status, last.first, n, last.steps)
        else:
            stretches.append(_Stretch(step.status_after, n, n, Counter([step])))
    return stretches


def _told_differences(live: OrderView, replayed: OrderView) -> list[str]:
    found = []
    for only, a, b in (("live", live, replayed), ("replayed", replayed, live)):
        missing = sorted(set(a.told) - set(b.told))
        if missing:
            entries = ", ".join(
                f"{kind} from {source} [{event_id}]" for event_id, kind, source in missing
            )
            found.append(f"timeline entries only {only}: {entries}")
    return found
