"""The saga's engine: read an order's saga state, ask the pure machine, apply its decision.

Every input goes through `Saga.advance`: other services' events (the consumer), customer
requests (the API) and time (deadlines, re-sends). The order row is locked by then, so one
order's inputs are applied one at a time whatever their source.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from kit.envelope import Envelope
from kit.logs import log_context
from kit.metrics import major_units
from kit.unit_of_work import UnitOfWork
from orders import metrics
from orders.adapters.tables import Order, OrderReturn, TimelineEntry
from orders.domain.returns import OrderedLine, ReturnLine, refund_for
from orders.domain.saga import (
    ACKNOWLEDGED_BY,
    COMMAND_FOR,
    INFORMATIONAL,
    TERMINAL,
    Decision,
    Input,
    OrderStatus,
    SagaState,
    Step,
    decide,
)
from orders.handlers.saga_messages import payload_for
from orders.settings import OrdersSettings

log = logging.getLogger(__name__)


# The note of a command the timer sends again: its entry follows no input of its own.
RESENT = "re-sent, attempt"


@dataclass(frozen=True)
class Arrival:
    """What the timeline records about an input."""

    event_id: str
    event_type: str
    source: str
    occurred_at: datetime


def saga_state(order: Order) -> SagaState:
    return SagaState(
        OrderStatus(order.status),
        dict(order.awaiting or {}),
        dispatched=order.dispatched_at is not None,
        active_return=order.active_return_id or "",
    )


def input_of(envelope: Envelope) -> Input:
    payload = envelope.payload
    if envelope.event_type == "PaymentRefunded":
        reference = payload["refund_id"]
    else:
        reference = payload.get("return_id") or ""
    reason = payload.get("reason") if envelope.event_type == "PaymentFailed" else ""
    return Input(envelope.event_type, reason=str(reason or ""), reference=str(reference))


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


def backoff(attempt: int, initial: timedelta, maximum: timedelta) -> timedelta:
    """Pause before re-send number `attempt` (0 = the first wait): doubling, capped."""
    return min(initial * (1 << min(attempt, 30)), maximum)


class Saga:
    def __init__(self, settings: OrdersSettings) -> None:
        self._settings = settings
        self._deadlines = {
            Step.STOCK: settings.stock_deadline,
            Step.PAYMENT: settings.payment_deadline,
            Step.SHIPMENT: settings.shipment_deadline,
        }

    @property
    def return_window(self) -> timedelta:
        return self._settings.return_window

    def deadline_after(self, step: Step, now: datetime) -> datetime:
        return now + self._deadlines[step]

    def on_order_event(self, envelope: Envelope, uow: UnitOfWork) -> None:
        order_id = envelope.payload["order_id"]
        # Locked by lock_orders_of_batch: this finds it in the session without a query.
        order = uow.session.get(Order, order_id)
        if order is None:
            log.warning("%s for an unknown order %s; ignored", envelope.event_type, order_id)
            return
        arrival = Arrival(
            envelope.event_id,
            envelope.event_type,
            envelope.producer or "unknown",
            envelope.occurred_at,
        )
        self.advance(uow, order, input_of(envelope), arrival, envelope.payload, cause=envelope)

    def advance(
        self,
        uow: UnitOfWork,
        order: Order,
        event: Input,
        arrival: Arrival,
        payload: Mapping[str, Any] | None = None,
        cause: Envelope | None = None,
    ) -> Decision:
        decision = decide(saga_state(order), event)
        _learn(order, event.event_type, payload or {}, accepted=decision.changed)
        _record(
            uow, order, arrival, decision.status if decision.changed else None, decision.ignored
        )
        if decision.changed:
            if event.event_type == "PaymentRefunded" and payload:
                refunded = major_units(payload["amount"])
                counter = metrics.orders_refunded_amount.labels(order.currency)
                uow.after_commit(lambda: counter.inc(refunded))
            self._apply(uow, order, decision, cause)
        elif event.event_type not in INFORMATIONAL:
            uow.after_commit(metrics.saga_inputs_ignored.labels(event.event_type).inc)
        return decision

    def resend_unacknowledged(self, uow: UnitOfWork, order: Order, now: datetime) -> None:
        """The backoff passed with acknowledgements missing: send their commands again."""
        order.retry_attempts += 1
        for ack in order.awaiting:
            command = COMMAND_FOR[ack]
            self._emit(uow, order, None, command, now, note=f"{RESENT} {order.retry_attempts}")
            uow.after_commit(metrics.saga_commands_resent.labels(command).inc)
        order.retry_at = now + backoff(
            order.retry_attempts,
            self._settings.compensation_retry_initial,
            self._settings.compensation_retry_max,
        )

    def _apply(
        self, uow: UnitOfWork, order: Order, decision: Decision, cause: Envelope | None
    ) -> None:
        now = datetime.now(UTC)
        left = OrderStatus(order.status)
        order.status = decision.status
        order.updated_at = now
        if decision.cancel_reason is not None:
            order.cancel_reason = decision.cancel_reason or None
        if decision.status != left:
            _count_transition(uow, order, left, now)
            _log_transition(order, left)
        order.deadline_at = (
            self.deadline_after(decision.deadline, now) if decision.deadline else None
        )
        commands_sent = any(m in ACKNOWLEDGED_BY for m in decision.emit)
        order.awaiting = dict(decision.awaiting)
        if not order.awaiting:
            order.retry_at, order.retry_attempts = None, 0
        elif commands_sent:
            order.retry_at = now + self._settings.compensation_retry_initial
            order.retry_attempts = 0
        self._settle(uow, order, decision.status, now)
        for message_type in decision.emit:
            self._emit(uow, order, cause, message_type, now)

    @staticmethod
    def _settle(uow: UnitOfWork, order: Order, status: OrderStatus, now: datetime) -> None:
        """Bookkeeping and metrics of the states an order comes to rest in."""
        if status is OrderStatus.COMPLETED:
            order.completed_at = now
            e2e = (now - order.placed_at).total_seconds()
            revenue = major_units(order.total)
            revenue_counter = metrics.orders_revenue_amount.labels(order.currency)
            uow.after_commit(metrics.orders_completed.inc)
            uow.after_commit(lambda: metrics.order_e2e_seconds.observe(e2e))
            uow.after_commit(lambda: revenue_counter.inc(revenue))
        elif status is OrderStatus.CANCELLED:
            uow.after_commit(metrics.orders_cancelled.labels(order.cancel_reason or "unknown").inc)
        elif status is OrderStatus.RETURNED:
            finished = _active_return(order)
            if finished is not None:
                finished.status, finished.completed_at = "refunded", now
            uow.after_commit(metrics.orders_returned.inc)

    def _emit(
        self,
        uow: UnitOfWork,
        order: Order,
        cause: Envelope | None,
        message_type: str,
        now: datetime,
        note: str | None = None,
    ) -> None:
        payload = payload_for(message_type, order, _active_return(order), now)
        if cause is not None:
            message = cause.caused(message_type, payload, producer=uow.service_name)
        else:  # a customer request or a timer starts this chain; the order's trace goes on
            message = uow.new_event(
                message_type,
                payload,
                key=order.order_id,
                correlation_id=order.order_id,
                trace_id=order.trace_id,
            )
        message = uow.emit(message)  # a replay gives it the id it had first
        if message_type == "OrderReturned":
            order.active_return_id = None
        arrival = Arrival(message.event_id, message_type, uow.service_name, now)
        _record(uow, order, arrival, None, note)


# Where an order comes to rest, or starts being undone, is worth a line at INFO; the steps
# in between are DEBUG: at the throughput this is built for, a line per step is a cost.
_NOTABLE = frozenset({*TERMINAL, OrderStatus.COMPENSATING})


def _log_transition(order: Order, left: OrderStatus) -> None:
    level = logging.INFO if order.status in _NOTABLE else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    # Customer requests and timers get here outside any message: name the order ourselves.
    with log_context(correlation_id=order.order_id, trace_id=order.trace_id):
        log.log(level, "order %s %s -> %s", order.order_id, left, order.status)


def _count_transition(uow: UnitOfWork, order: Order, left: OrderStatus, now: datetime) -> None:
    """Time spent in the state just left; a compensation when one starts."""
    spent = (now - order.status_since).total_seconds()
    order.status_since = now
    histogram = metrics.saga_state_seconds.labels(left)
    uow.after_commit(lambda: histogram.observe(spent))
    if order.status == OrderStatus.FULFILLING:
        processing = (now - order.placed_at).total_seconds()
        uow.after_commit(lambda: metrics.order_processing_seconds.observe(processing))
    elif order.status == OrderStatus.COMPENSATING:
        reason = order.cancel_reason or "unknown"
        uow.after_commit(metrics.saga_compensations.labels(reason).inc)


def _active_return(order: Order) -> OrderReturn | None:
    if not order.active_return_id:
        return None
    return next((r for r in order.returns if r.return_id == order.active_return_id), None)


def _lines(raw: Sequence[Mapping[str, Any]] | None) -> list[ReturnLine]:
    return [ReturnLine(line["sku"], int(line["quantity"])) for line in raw or ()]


def _learn(order: Order, event_type: str, payload: Mapping[str, Any], *, accepted: bool) -> None:
    """What an input teaches the order besides its status. Facts about the forward path are
    kept even from an event the machine ignores; the rest only when it was accepted."""
    match event_type:
        case "PaymentCaptured":
            order.payment_id = payload["payment_id"]
        case "ShipmentCreated":
            order.shipment_id, order.carrier = payload["shipment_id"], payload["carrier"]
        case "ShipmentDispatched":
            order.tracking_number = payload["tracking_number"]
            order.dispatched_at = order.dispatched_at or payload["dispatched_at"]
    active = _active_return(order)
    if not accepted:
        return
    match event_type:
        case "PaymentRefunded":
            order.refunded += payload["amount"]
        case "ReturnLabelIssued" if active is not None:
            active.carrier, active.label_reference = payload["carrier"], payload["label_reference"]
            active.status = "label_issued"
        case "ReturnReceived" if active is not None:
            received = _lines(payload["lines"])
            before = [
                line
                for r in order.returns
                if r.status == "refunded"
                for line in _lines(r.received_lines)
            ]
            ordered = [OrderedLine(x.sku, x.quantity, x.unit_price) for x in order.lines]
            active.received_lines = [{"sku": x.sku, "quantity": x.quantity} for x in received]
            active.refund_amount = refund_for(ordered, before, received, order.shipping)
            active.status = "received"


def _record(
    uow: UnitOfWork,
    order: Order,
    arrival: Arrival,
    status_after: OrderStatus | None,
    note: str | None,
) -> None:
    uow.session.add(
        TimelineEntry(
            order_id=order.order_id,
            event_id=arrival.event_id,
            event_type=arrival.event_type,
            source=arrival.source,
            occurred_at=arrival.occurred_at,
            status_after=status_after or order.status,
            note=note,
        )
    )
