"""The saga's reactions to other services' events: one order row locked, one decision."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork
from orders import metrics
from orders.adapters.tables import Order, TimelineEntry
from orders.domain.saga import Decision, OrderStatus, decide

log = logging.getLogger(__name__)

CANCEL_DETAILS = {
    "out_of_stock": "Not enough stock for at least one line.",
    "declined": "The payment was declined.",
    "insufficient_funds": "The payment was declined for insufficient funds.",
    "provider_error": "The payment provider failed.",
    "provider_timeout": "The payment provider did not answer.",
    "fraud_rejected": "The payment was rejected by fraud screening.",
}


def _learn(order: Order, event_type: str, payload: Mapping[str, Any]) -> None:
    """What an event teaches the order besides its status."""
    match event_type:
        case "PaymentCaptured":
            order.payment_id = payload["payment_id"]
        case "ShipmentCreated":
            order.shipment_id, order.carrier = payload["shipment_id"], payload["carrier"]
        case "ShipmentDispatched":
            order.tracking_number = payload["tracking_number"]


def lock_orders_of_batch(envelopes: Sequence[Envelope], uow: UnitOfWork) -> None:
    """One query locks every order the batch is about; handlers then find them in memory."""
    order_ids = {e.payload["order_id"] for e in envelopes if "order_id" in e.payload}
    if order_ids:
        uow.retain(
            uow.session.scalars(
                select(Order)
                .where(Order.order_id.in_(order_ids))
                .order_by(Order.order_id)  # one lock order for every batch: no deadlocks
                .with_for_update()
            )
        )


def on_order_event(envelope: Envelope, uow: UnitOfWork) -> None:
    order_id = envelope.payload["order_id"]
    # Locked by lock_orders_of_batch: this finds it in the session without a query.
    order = uow.session.get(Order, order_id)
    if order is None:
        log.warning("%s for an unknown order %s; ignored", envelope.event_type, order_id)
        return
    decision = decide(
        OrderStatus(order.status),
        envelope.event_type,
        failure_reason=str(envelope.payload.get("reason", "")),
    )
    _learn(order, envelope.event_type, envelope.payload)
    _record(
        uow,
        order,
        envelope.event_id,
        envelope.event_type,
        envelope.producer,
        envelope.occurred_at,
        decision,
    )
    if decision.changed:
        _apply(uow, order, envelope, decision)


def _apply(uow: UnitOfWork, order: Order, cause: Envelope, decision: Decision) -> None:
    now = datetime.now(UTC)
    order.status = decision.status
    order.updated_at = now
    if decision.cancel_reason:
        order.cancel_reason = decision.cancel_reason
    for message_type in decision.emit:
        payload = _payload(message_type, order, now)
        emitted = cause.caused(message_type, payload, producer=uow.service_name)
        uow.emit(emitted)
        _record(uow, order, emitted.event_id, message_type, "orders", now, None)
    if decision.status is OrderStatus.COMPLETED:
        order.completed_at = now
        metrics.orders_completed.inc()
        metrics.order_e2e_seconds.observe((now - order.placed_at).total_seconds())
    elif decision.status is OrderStatus.CANCELLED:
        metrics.orders_cancelled.labels(order.cancel_reason or "unknown").inc()


def _payload(message_type: str, order: Order, now: datetime) -> dict[str, Any]:
    reason = order.cancel_reason or "unknown"
    match message_type:
        case "OrderCompleted":
            return {"order_id": order.order_id, "completed_at": now}
        case "OrderCancelled":
            detail = CANCEL_DETAILS.get(reason, reason.replace("_", " "))
            return {
                "order_id": order.order_id,
                "reason": reason,
                "detail": detail,
                "cancelled_at": now,
            }
        case "ReleaseStock":
            return {"order_id": order.order_id, "reason": reason}
    raise ValueError(f"the saga has no payload for {message_type}")


def _record(
    uow: UnitOfWork,
    order: Order,
    event_id: str,
    event_type: str,
    source: str,
    occurred_at: datetime,
    decision: Decision | None,
) -> None:
    uow.session.add(
        TimelineEntry(
            order_id=order.order_id,
            event_id=event_id,
            event_type=event_type,
            source=source or "unknown",
            occurred_at=occurred_at,
            status_after=decision.status if decision else order.status,
            note=decision.ignored if decision else None,
        )
    )
