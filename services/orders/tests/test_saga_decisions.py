"""Every row of the saga's transition table, and what happens off the table."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from orders.domain.saga import (
    CUSTOMER_CANCEL,
    CUSTOMER_RETURN,
    DEADLINE_PASSED,
    TRANSITIONS,
    Input,
    OrderStatus,
    SagaState,
    Step,
    cancel_refusal,
    decide,
)

S = OrderStatus
UNDO = {"StockReleased": "", "PaymentRefunded": ""}


@dataclass(frozen=True)
class Row:
    state: SagaState
    event: Input
    status: OrderStatus
    emit: tuple[str, ...] = ()
    awaiting: dict[str, str] = field(default_factory=dict)
    deadline: Step | None = None
    cancel_reason: str | None = None


def row(status: OrderStatus, event: str, then: OrderStatus, *emit: str, **more: object) -> Row:
    state = more.pop("state", SagaState(status))
    reference = str(more.pop("reference", ""))
    reason = str(more.pop("reason", ""))
    return Row(state, Input(event, reason=reason, reference=reference), then, emit, **more)  # type: ignore[arg-type]


def compensating(awaiting: dict[str, str], **more: object) -> SagaState:
    return SagaState(S.COMPENSATING, awaiting, **more)  # type: ignore[arg-type]


def cancel(status: OrderStatus, reason: str = "customer_cancelled") -> dict[str, object]:
    return {"awaiting": {"ShipmentCancelled": ""}, "cancel_reason": reason}


ROWS = [
    # the forward path, and events that overtake each other: the furthest step wins
    row(S.PENDING, "StockReserved", S.RESERVED, deadline=Step.PAYMENT),
    row(S.PENDING, "PaymentCaptured", S.PAID, deadline=Step.SHIPMENT),
    row(S.PENDING, "ShipmentCreated", S.FULFILLING),
    row(S.PENDING, "ShipmentDispatched", S.FULFILLING),
    row(S.PENDING, "ShipmentDelivered", S.COMPLETED, "OrderCompleted"),
    row(S.RESERVED, "PaymentCaptured", S.PAID, deadline=Step.SHIPMENT),
    row(S.RESERVED, "ShipmentCreated", S.FULFILLING),
    row(S.RESERVED, "ShipmentDispatched", S.FULFILLING),
    row(S.RESERVED, "ShipmentDelivered", S.COMPLETED, "OrderCompleted"),
    row(S.PAID, "ShipmentCreated", S.FULFILLING),
    row(S.PAID, "ShipmentDispatched", S.FULFILLING),
    row(S.PAID, "ShipmentDelivered", S.COMPLETED, "OrderCompleted"),
    row(S.FULFILLING, "ShipmentDispatched", S.FULFILLING),
    row(S.FULFILLING, "ShipmentDelivered", S.COMPLETED, "OrderCompleted"),
    # failures
    row(S.PENDING, "StockReservationFailed", S.CANCELLED, "OrderCancelled",
        cancel_reason="out_of_stock"),
    row(S.PENDING, "PaymentFailed", S.COMPENSATING, "ReleaseStock", reason="declined",
        awaiting={"StockReleased": ""}, cancel_reason="declined"),
    row(S.RESERVED, "PaymentFailed", S.COMPENSATING, "ReleaseStock", reason="provider_timeout",
        awaiting={"StockReleased": ""}, cancel_reason="provider_timeout"),
    # customer cancel and deadlines: stop the shipment first
    row(S.PENDING, CUSTOMER_CANCEL, S.COMPENSATING, "CancelShipment", **cancel(S.PENDING)),
    row(S.RESERVED, CUSTOMER_CANCEL, S.COMPENSATING, "CancelShipment", **cancel(S.RESERVED)),
    row(S.PAID, CUSTOMER_CANCEL, S.COMPENSATING, "CancelShipment", **cancel(S.PAID)),
    row(S.FULFILLING, CUSTOMER_CANCEL, S.COMPENSATING, "CancelShipment", **cancel(S.FULFILLING)),
    row(S.PENDING, DEADLINE_PASSED, S.COMPENSATING, "CancelShipment",
        **cancel(S.PENDING, "stock_deadline_exceeded")),
    row(S.RESERVED, DEADLINE_PASSED, S.COMPENSATING, "CancelShipment",
        **cancel(S.RESERVED, "payment_deadline_exceeded")),
    row(S.PAID, DEADLINE_PASSED, S.COMPENSATING, "CancelShipment",
        **cancel(S.PAID, "shipment_deadline_exceeded")),
    # compensation: nothing ships any more -> money and stock go back -> cancelled
    row(S.COMPENSATING, "ShipmentCancelled", S.COMPENSATING, "ReleaseStock", "RefundPayment",
        state=compensating({"ShipmentCancelled": ""}), awaiting=UNDO),
    row(S.COMPENSATING, "StockReleased", S.COMPENSATING,
        state=compensating(UNDO), awaiting={"PaymentRefunded": ""}),
    row(S.COMPENSATING, "PaymentRefunded", S.CANCELLED, "OrderCancelled",
        state=compensating({"PaymentRefunded": ""})),
    # the goods left before fulfillment read CancelShipment: the order carries on
    row(S.COMPENSATING, "ShipmentDispatched", S.FULFILLING,
        state=compensating({"ShipmentCancelled": ""}), cancel_reason=""),
    row(S.COMPENSATING, "ShipmentDelivered", S.COMPLETED, "OrderCompleted",
        state=compensating({"ShipmentCancelled": ""}), cancel_reason=""),
    # returns
    row(S.COMPLETED, CUSTOMER_RETURN, S.RETURN_REQUESTED, "ReturnRequested", "IssueReturnLabel",
        reference="r1", awaiting={"ReturnLabelIssued": "r1"}),
    row(S.RETURNED, CUSTOMER_RETURN, S.RETURN_REQUESTED, "ReturnRequested", "IssueReturnLabel",
        reference="r2", awaiting={"ReturnLabelIssued": "r2"}),
    row(S.RETURN_REQUESTED, "ReturnLabelIssued", S.RETURN_REQUESTED, reference="r1",
        state=SagaState(S.RETURN_REQUESTED, {"ReturnLabelIssued": "r1"}, True, "r1")),
    row(S.RETURN_REQUESTED, "ReturnReceived", S.RETURNING, "RestockItems", "RefundPayment",
        reference="r1", state=SagaState(S.RETURN_REQUESTED, {}, True, "r1"),
        awaiting={"StockRestocked": "r1", "PaymentRefunded": "refund-r1"}),
    row(S.RETURNING, "StockRestocked", S.RETURNING, reference="r1",
        state=SagaState(S.RETURNING, {"StockRestocked": "r1", "PaymentRefunded": "x"}, True, "r1"),
        awaiting={"PaymentRefunded": "x"}),
    row(S.RETURNING, "PaymentRefunded", S.RETURNED, "OrderReturned", reference="x",
        state=SagaState(S.RETURNING, {"PaymentRefunded": "x"}, True, "r1")),
]  # fmt: skip


def test_every_row_of_the_table_is_tested() -> None:
    assert {(r.state.status, r.event.event_type) for r in ROWS} == set(TRANSITIONS)


@pytest.mark.parametrize("expected", ROWS, ids=lambda r: f"{r.state.status}+{r.event.event_type}")
def test_each_row_moves_the_order_and_emits_its_messages(
    expected: Row, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orders.domain.saga.refund_id_for_return", lambda r: f"refund-{r}")
    decision = decide(expected.state, expected.event)
    assert decision.ignored is None
    assert decision.status is expected.status
    assert decision.emit == expected.emit
    assert dict(decision.awaiting) == expected.awaiting
    assert decision.deadline == expected.deadline
    assert decision.cancel_reason == expected.cancel_reason


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (SagaState(S.PAID), Input("StockReserved")),  # overtaken by a later step
        (SagaState(S.FULFILLING, dispatched=True), Input("ShipmentDispatched")),  # a repeat
        (SagaState(S.COMPLETED), Input("ShipmentDelivered")),
        (SagaState(S.CANCELLED), Input("PaymentCaptured")),  # late: RefundPayment covers it
        (compensating(UNDO), Input("StockReserved")),
        (compensating(UNDO), Input("ShipmentCreated")),
        (SagaState(S.PAID), Input("StockReservationFailed")),
        (SagaState(S.FULFILLING), Input("PaymentFailed")),
        (SagaState(S.RESERVED), Input("StockReleased")),  # nobody asked
        (compensating(UNDO), Input("ShipmentCancelled")),  # acknowledged before
        (compensating(UNDO), Input("ShipmentDispatched")),  # the door was already shut
        (compensating(UNDO), Input(CUSTOMER_CANCEL)),  # cancelling already
        (SagaState(S.CANCELLED), Input(CUSTOMER_CANCEL)),
        (SagaState(S.FULFILLING, dispatched=True), Input(CUSTOMER_CANCEL)),
        (compensating(UNDO), Input(DEADLINE_PASSED)),
        (SagaState(S.FULFILLING), Input(DEADLINE_PASSED)),  # FULFILLING has no deadline
        (SagaState(S.PAID), Input(CUSTOMER_RETURN, reference="r1")),  # not delivered
        (SagaState(S.RETURNING, {"PaymentRefunded": "x"}, True, "r2"),
         Input("PaymentRefunded", reference="old")),  # an earlier return's refund
        (SagaState(S.RETURN_REQUESTED, {}, True, "r2"), Input("ReturnReceived", reference="r1")),
        (SagaState(S.RESERVED), Input("NotificationSent")),
        (SagaState(S.RESERVED), Input("SomethingNobodyKnows")),
    ],
)  # fmt: skip
def test_stale_late_repeated_or_unknown_inputs_are_ignored_with_a_reason(
    state: SagaState, event: Input
) -> None:
    decision = decide(state, event)
    assert not decision.changed
    assert decision.ignored
    assert decision.status is state.status
    assert decision.emit == ()


def test_a_dispatched_order_refuses_a_cancel_and_an_undispatched_one_accepts_it() -> None:
    assert cancel_refusal(SagaState(S.FULFILLING, dispatched=True)) == "dispatched"
    assert cancel_refusal(SagaState(S.COMPLETED)) == "dispatched"
    assert cancel_refusal(SagaState(S.RETURNED)) == "dispatched"
    for status in (S.PENDING, S.RESERVED, S.PAID, S.FULFILLING, S.COMPENSATING, S.CANCELLED):
        assert cancel_refusal(SagaState(status)) is None


def test_a_late_capture_after_cancellation_is_noted_as_covered_by_the_refund() -> None:
    decision = decide(SagaState(S.CANCELLED), Input("PaymentCaptured"))
    assert decision.ignored is not None and "compensation" in decision.ignored
