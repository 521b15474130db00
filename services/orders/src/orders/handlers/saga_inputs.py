"""Saga inputs that come from outside Kafka — a customer's cancel request, a deadline that
passed — recorded as events on orders.events in the transaction that feeds them to the saga.

Without them the log would hold only their consequences (a CancelShipment whose reason
says why), and the order could not be rebuilt from the topics alone. Each records the event
id of the order's latest timeline entry when the saga took it (`after_event_id`): these
inputs arrive by wall clock, not through the consumer, so record timestamps alone cannot say
where among the consumed events they fell; a replay feeds them right after that entry.

The live path records and feeds (`record_*`, then `feed_*`); a replay (`orders.replay`)
only feeds the recorded event.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork
from orders.adapters.tables import Order, TimelineEntry
from orders.domain.saga import CUSTOMER_CANCEL, CUSTOMER_RETURN, DEADLINE_PASSED, Input
from orders.handlers.saga import Arrival, Saga

CANCELLATION_REQUESTED = "OrderCancellationRequested"
DEADLINE_PASSED_EVENT = "OrderDeadlinePassed"


def latest_entry_id(uow: UnitOfWork, order_id: str) -> str | None:
    """The event id of the order's latest timeline entry (this transaction's included)."""
    return uow.session.scalar(
        select(TimelineEntry.event_id)
        .where(TimelineEntry.order_id == order_id)
        .order_by(TimelineEntry.id.desc())
        .limit(1)
    )


def _record(uow: UnitOfWork, order: Order, event_type: str, **payload: object) -> Envelope:
    after = latest_entry_id(uow, order.order_id)
    return uow.emit(
        uow.new_event(
            event_type,
            {"order_id": order.order_id, **payload, "after_event_id": after},
            key=order.order_id,
            correlation_id=order.order_id,
            trace_id=order.trace_id,
        )
    )


def record_cancellation_request(uow: UnitOfWork, order: Order) -> Envelope:
    return _record(uow, order, CANCELLATION_REQUESTED, requested_at=datetime.now(UTC))


def record_deadline(uow: UnitOfWork, order: Order, step: str) -> Envelope:
    deadline_at = order.deadline_at or datetime.now(UTC)
    return _record(uow, order, DEADLINE_PASSED_EVENT, step=step, deadline_at=deadline_at)


def feed_cancellation_request(uow: UnitOfWork, saga: Saga, order: Order, request: Envelope) -> None:
    """The timeline names the input by the recorded event's id; what the saga sends in
    answer is caused by it."""
    arrival = Arrival(request.event_id, CUSTOMER_CANCEL, "customer", request.occurred_at)
    saga.advance(uow, order, Input(CUSTOMER_CANCEL), arrival, cause=request)


def feed_deadline(uow: UnitOfWork, saga: Saga, order: Order, passed: Envelope) -> None:
    arrival = Arrival(passed.event_id, DEADLINE_PASSED, uow.service_name, passed.occurred_at)
    saga.advance(uow, order, Input(DEADLINE_PASSED), arrival, cause=passed)


def customer_return_id(return_id: str) -> str:
    """The timeline id of a return request: derived from the return (whose ReturnRequested is
    on the log), so a replay names it as the live saga did."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"customer-return:{return_id}"))


def customer_return_arrival(return_id: str, now: datetime) -> Arrival:
    return Arrival(customer_return_id(return_id), CUSTOMER_RETURN, "customer", now)
