from __future__ import annotations

import pytest

from orders.domain.saga import OrderStatus, decide

S = OrderStatus


@pytest.mark.parametrize(
    ("status", "event", "expected", "emit"),
    [
        (S.PENDING, "StockReserved", S.RESERVED, ()),
        (S.RESERVED, "PaymentCaptured", S.PAID, ()),
        (S.PAID, "ShipmentCreated", S.FULFILLING, ()),
        (S.PAID, "ShipmentDispatched", S.FULFILLING, ()),
        (S.FULFILLING, "ShipmentDelivered", S.COMPLETED, ("OrderCompleted",)),
        # events from different topics overtake each other: progress is never lost
        (S.PENDING, "PaymentCaptured", S.PAID, ()),
        (S.RESERVED, "ShipmentDelivered", S.COMPLETED, ("OrderCompleted",)),
        (S.PENDING, "StockReservationFailed", S.CANCELLED, ("OrderCancelled",)),
        (S.RESERVED, "PaymentFailed", S.COMPENSATING, ("ReleaseStock",)),
        (S.PENDING, "PaymentFailed", S.COMPENSATING, ("ReleaseStock",)),
        (S.COMPENSATING, "StockReleased", S.CANCELLED, ("OrderCancelled",)),
    ],
)
def test_each_transition_moves_the_order_and_emits_its_messages(
    status: OrderStatus, event: str, expected: OrderStatus, emit: tuple[str, ...]
) -> None:
    decision = decide(status, event, failure_reason="declined")
    assert decision.changed
    assert (decision.status, decision.emit) == (expected, emit)


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (S.PAID, "StockReserved"),
        (S.COMPLETED, "ShipmentDelivered"),
        (S.CANCELLED, "PaymentCaptured"),
        (S.COMPENSATING, "StockReserved"),
        (S.PAID, "StockReservationFailed"),
        (S.FULFILLING, "PaymentFailed"),
        (S.RESERVED, "StockReleased"),
        (S.RESERVED, "NotificationSent"),
        (S.RESERVED, "SomethingNobodyKnows"),
    ],
)
def test_stale_or_unknown_events_are_recorded_and_change_nothing(
    status: OrderStatus, event: str
) -> None:
    decision = decide(status, event)
    assert not decision.changed
    assert decision.status is status
    assert decision.emit == ()
    assert decision.ignored


def test_a_payment_failure_keeps_the_providers_reason() -> None:
    assert decide(S.RESERVED, "PaymentFailed", failure_reason="fraud_rejected").cancel_reason == (
        "fraud_rejected"
    )
    assert decide(S.PENDING, "StockReservationFailed").cancel_reason == "out_of_stock"
