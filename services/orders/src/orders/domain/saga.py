"""The order saga as a pure state machine: (state, event) -> decision. No I/O here.

`TRANSITIONS` is the whole table: for each (status, event type) a rule that says where the
order goes, which messages the saga emits and which acknowledgements it then waits for.
A pair that is not in the table is stale or unknown: recorded in the timeline, ignored.

Three facts shape the table:
- Events about one order come from several topics, so a later step can overtake an
  earlier one (PaymentCaptured before StockReserved). Forward events move the order to the
  furthest step they imply and never back.
- The saga may lag behind the services: when it decides to compensate it cannot know
  what has happened downstream, so it asks every service whose step is still possible.
  Each command undoes what its service did *and* closes the door on anything later.
- Goods that left the warehouse cannot be called back: a cancellation first stops the
  shipment (CancelShipment) and only once fulfillment confirms does it release stock and
  refund. If the goods were dispatched meanwhile, the cancellation fails and the order
  carries on to delivery; a return is the way back then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from orders.domain.returns import refund_id_for_return


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    PAID = "PAID"
    FULFILLING = "FULFILLING"
    COMPLETED = "COMPLETED"
    COMPENSATING = "COMPENSATING"
    CANCELLED = "CANCELLED"
    RETURN_REQUESTED = "RETURN_REQUESTED"
    RETURNING = "RETURNING"
    RETURNED = "RETURNED"


S = OrderStatus
TERMINAL = frozenset({S.COMPLETED, S.CANCELLED, S.RETURNED})
IN_PROGRESS = (S.PENDING, S.RESERVED, S.PAID, S.FULFILLING)


class Step(StrEnum):
    """The forward steps that have a deadline, and the status waiting for each."""

    STOCK = "stock"
    PAYMENT = "payment"
    SHIPMENT = "shipment"


DEADLINE_OF = {S.PENDING: Step.STOCK, S.RESERVED: Step.PAYMENT, S.PAID: Step.SHIPMENT}

# Each compensation or return command and the event that acknowledges it. A command is
# re-sent with backoff until its acknowledgement arrives.
ACKNOWLEDGED_BY = {
    "ReleaseStock": "StockReleased",
    "RefundPayment": "PaymentRefunded",
    "CancelShipment": "ShipmentCancelled",
    "IssueReturnLabel": "ReturnLabelIssued",
    "RestockItems": "StockRestocked",
}
COMMAND_FOR = {ack: command for command, ack in ACKNOWLEDGED_BY.items()}

# Events that only tell the customer's story (what was sent to them): never a transition.
INFORMATIONAL = frozenset({"NotificationSent"})

# Timer and customer inputs, next to the events other services publish.
DEADLINE_PASSED = "DeadlinePassed"
CUSTOMER_CANCEL = "CustomerCancel"
CUSTOMER_RETURN = "CustomerReturn"


@dataclass(frozen=True)
class SagaState:
    status: OrderStatus
    # acknowledgement event type -> the reference it must carry ("" for any): a refund's
    # refund_id, a return's return_id, so an old return's late ack never closes a new one.
    awaiting: Mapping[str, str] = field(default_factory=dict)
    dispatched: bool = False
    active_return: str = ""  # the return_id of the return in progress


@dataclass(frozen=True)
class Input:
    event_type: str
    reason: str = ""  # PaymentFailed's reason
    reference: str = ""  # refund_id / return_id of an acknowledgement


@dataclass(frozen=True)
class Decision:
    status: OrderStatus
    emit: tuple[str, ...] = ()
    awaiting: Mapping[str, str] = field(default_factory=dict)
    deadline: Step | None = None  # start this step's deadline; None clears it
    cancel_reason: str | None = None  # set it; "" clears it (a cancellation that failed)
    dispatched: bool = False
    ignored: str | None = None  # why nothing changed

    @property
    def changed(self) -> bool:
        return self.ignored is None


Rule = Callable[[SagaState, Input], Decision]


def decide(state: SagaState, event: Input) -> Decision:
    """What the saga does when `event` arrives for an order in `state`."""
    rule = TRANSITIONS.get((state.status, event.event_type))
    if rule is None:
        return _ignore(state, _why_ignored(state, event))
    return rule(state, event)


def cancel_refusal(state: SagaState) -> str | None:
    """Why a customer can no longer cancel, or None when a cancel request is accepted."""
    if state.dispatched or state.status in (S.COMPLETED, S.RETURNED, *_RETURN_STATES):
        return "dispatched"
    return None


# -- rules ---------------------------------------------------------------------------------


def _ignore(state: SagaState, why: str) -> Decision:
    return Decision(state.status, ignored=why)


def _why_ignored(state: SagaState, event: Input) -> str:
    if event.event_type in INFORMATIONAL:
        return "for the timeline"
    if state.status in (S.COMPENSATING, S.CANCELLED) and event.event_type in _FORWARD_STEP:
        return "late: the compensation's commands undo it"
    if event.event_type in COMMAND_FOR:
        return "acknowledgement nobody waits for (a repeat)"
    if event.event_type in _FORWARD_STEP:
        return f"already {state.status}"
    return f"nothing to do while {state.status}"


_FORWARD_STEP = {
    "StockReserved": S.RESERVED,
    "PaymentCaptured": S.PAID,
    "ShipmentCreated": S.FULFILLING,
    "ShipmentDispatched": S.FULFILLING,
    "ShipmentDelivered": S.COMPLETED,
}


def _forward(state: SagaState, event: Input) -> Decision:
    target = _FORWARD_STEP[event.event_type]
    dispatched = state.dispatched or event.event_type in ("ShipmentDispatched", "ShipmentDelivered")
    if IN_PROGRESS.index(state.status) >= _progress(target):
        if dispatched and not state.dispatched:
            return Decision(state.status, dispatched=True)
        return _ignore(state, f"already {state.status}")
    emit = ("OrderCompleted",) if target is S.COMPLETED else ()
    return Decision(target, emit, deadline=DEADLINE_OF.get(target), dispatched=dispatched)


def _progress(status: OrderStatus) -> int:
    return len(IN_PROGRESS) if status is S.COMPLETED else IN_PROGRESS.index(status)


def _out_of_stock(state: SagaState, event: Input) -> Decision:
    return Decision(S.CANCELLED, ("OrderCancelled",), cancel_reason="out_of_stock")


def _payment_failed(state: SagaState, event: Input) -> Decision:
    # A failed payment can be followed by no capture and no shipment: only stock to release.
    return Decision(
        S.COMPENSATING,
        ("ReleaseStock",),
        awaiting={"StockReleased": ""},
        cancel_reason=event.reason or "payment_failed",
    )


def _compensate(reason: str) -> Rule:
    def rule(state: SagaState, event: Input) -> Decision:
        if state.dispatched:
            return _ignore(state, "too late to cancel: the shipment was dispatched")
        return Decision(
            S.COMPENSATING,
            ("CancelShipment",),
            awaiting={"ShipmentCancelled": ""},
            cancel_reason=reason,
        )

    return rule


_DEADLINE_REASON = {
    S.PENDING: "stock_deadline_exceeded",
    S.RESERVED: "payment_deadline_exceeded",
    S.PAID: "shipment_deadline_exceeded",
}


def _deadline(state: SagaState, event: Input) -> Decision:
    return _compensate(_DEADLINE_REASON[state.status])(state, event)


def _acknowledged(
    done: Callable[[SagaState], Decision], next_phase: Mapping[str, Rule] | None = None
) -> Rule:
    """An awaited acknowledgement: crossed off; when none is left, `done` decides."""

    def rule(state: SagaState, event: Input) -> Decision:
        expected = state.awaiting.get(event.event_type)
        if expected is None or (expected and expected != event.reference):
            return _ignore(state, "acknowledgement nobody waits for (a repeat)")
        if next_phase and event.event_type in next_phase:
            return next_phase[event.event_type](state, event)
        awaiting = {k: v for k, v in state.awaiting.items() if k != event.event_type}
        if awaiting:
            return Decision(state.status, awaiting=awaiting, dispatched=state.dispatched)
        return done(state)

    return rule


def _undo_what_happened(state: SagaState, event: Input) -> Decision:
    # Fulfillment confirmed nothing will ship: now the money and the stock can go back.
    return Decision(
        S.COMPENSATING,
        ("ReleaseStock", "RefundPayment"),
        awaiting={"StockReleased": "", "PaymentRefunded": ""},
    )


def _cancelled(state: SagaState) -> Decision:
    return Decision(S.CANCELLED, ("OrderCancelled",))


def _cancellation_too_late(state: SagaState, event: Input) -> Decision:
    """The goods left before fulfillment read CancelShipment: the order carries on."""
    if "ShipmentCancelled" not in state.awaiting:
        return _ignore(state, "late: the compensation's commands undo it")
    delivered = event.event_type == "ShipmentDelivered"
    return Decision(
        S.COMPLETED if delivered else S.FULFILLING,
        ("OrderCompleted",) if delivered else (),
        cancel_reason="",
        dispatched=True,
    )


def _return_requested(state: SagaState, event: Input) -> Decision:
    return Decision(
        S.RETURN_REQUESTED,
        ("ReturnRequested", "IssueReturnLabel"),
        awaiting={"ReturnLabelIssued": event.reference},
        dispatched=True,
    )


def _label_issued(state: SagaState) -> Decision:
    return Decision(S.RETURN_REQUESTED, dispatched=True)


def _goods_received(state: SagaState, event: Input) -> Decision:
    if event.reference != state.active_return:
        return _ignore(state, "goods received for a return that is not in progress")
    return Decision(
        S.RETURNING,
        ("RestockItems", "RefundPayment"),
        awaiting={
            "StockRestocked": event.reference,
            "PaymentRefunded": refund_id_for_return(event.reference),
        },
        dispatched=True,
    )


def _returned(state: SagaState) -> Decision:
    return Decision(S.RETURNED, ("OrderReturned",), dispatched=True)


_RETURN_STATES = (S.RETURN_REQUESTED, S.RETURNING)


def _table() -> dict[tuple[OrderStatus, str], Rule]:
    table: dict[tuple[OrderStatus, str], Rule] = {}
    for status in IN_PROGRESS:
        for event_type, target in _FORWARD_STEP.items():
            if _progress(target) > IN_PROGRESS.index(status) or event_type in (
                "ShipmentDispatched",
                "ShipmentDelivered",
            ):
                table[(status, event_type)] = _forward
        table[(status, CUSTOMER_CANCEL)] = _compensate("customer_cancelled")
    for status in (S.PENDING, S.RESERVED, S.PAID):
        table[(status, DEADLINE_PASSED)] = _deadline
    table[(S.PENDING, "StockReservationFailed")] = _out_of_stock
    table[(S.PENDING, "PaymentFailed")] = _payment_failed
    table[(S.RESERVED, "PaymentFailed")] = _payment_failed
    compensation_ack = _acknowledged(
        _cancelled, next_phase={"ShipmentCancelled": _undo_what_happened}
    )
    for ack in ("ShipmentCancelled", "StockReleased", "PaymentRefunded"):
        table[(S.COMPENSATING, ack)] = compensation_ack
    table[(S.COMPENSATING, "ShipmentDispatched")] = _cancellation_too_late
    table[(S.COMPENSATING, "ShipmentDelivered")] = _cancellation_too_late
    table[(S.COMPLETED, CUSTOMER_RETURN)] = _return_requested
    table[(S.RETURNED, CUSTOMER_RETURN)] = _return_requested  # a second, partial return
    table[(S.RETURN_REQUESTED, "ReturnLabelIssued")] = _acknowledged(_label_issued)
    table[(S.RETURN_REQUESTED, "ReturnReceived")] = _goods_received
    return_ack = _acknowledged(_returned)
    table[(S.RETURNING, "StockRestocked")] = return_ack
    table[(S.RETURNING, "PaymentRefunded")] = return_ack
    return table


TRANSITIONS: Mapping[tuple[OrderStatus, str], Rule] = _table()
