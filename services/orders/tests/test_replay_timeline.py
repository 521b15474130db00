"""What two timelines the log cannot tell apart are, and what it can (pure logic)."""

from __future__ import annotations

from orders.replay_timeline import TimelineStep, timeline_differences


def timeline(*steps: tuple[str, str, str, str]) -> list[TimelineStep]:
    """(event id, type, source, status after) in the order written."""
    return [
        TimelineStep(event_id, kind, source, status, None, position=n)
        for n, (event_id, kind, source, status) in enumerate(steps, start=1)
    ]


PLACED = ("p", "OrderPlaced", "orders", "PENDING")
RESERVED = ("r", "StockReserved", "inventory", "RESERVED")
CANCEL = ("c", "CustomerCancel", "customer", "COMPENSATING")
CANCEL_SHIPMENT = ("cs", "CancelShipment", "orders", "COMPENSATING")


def test_a_capture_read_before_its_reservation_is_the_same_timeline() -> None:
    live = timeline(
        PLACED,
        ("k", "PaymentCaptured", "payments", "PAID"),
        ("r", "StockReserved", "inventory", "PAID"),  # "already PAID"
    )
    replayed = timeline(PLACED, RESERVED, ("k", "PaymentCaptured", "payments", "PAID"))

    assert timeline_differences(live, replayed) == []


def test_a_cancel_taken_after_another_entry_than_recorded_is_a_difference() -> None:
    live = timeline(PLACED, RESERVED, CANCEL, CANCEL_SHIPMENT)
    replayed = timeline(
        PLACED, CANCEL, CANCEL_SHIPMENT, ("r", "StockReserved", "inventory", "COMPENSATING")
    )

    [found] = timeline_differences(live, replayed)

    assert found.startswith("timeline entry 3 is CustomerCancel from customer")
    assert found.endswith("+ CancelShipment from orders -> COMPENSATING [cs], after [p] replayed")


def test_an_answer_sent_for_another_input_is_a_difference() -> None:
    live = timeline(PLACED, RESERVED, CANCEL, CANCEL_SHIPMENT)
    replayed = timeline(PLACED, CANCEL, RESERVED, CANCEL_SHIPMENT)

    found = timeline_differences(live, replayed)

    assert [line.split(" is ")[0] for line in found] == [
        "timeline entry 3",  # the customer's cancel answered nothing, and came after [p]
        "timeline entry 2",  # inventory's reservation answered with CancelShipment
    ]


def test_a_resend_is_a_round_of_its_own_wherever_other_sources_fell() -> None:
    resent = ("rs", "CancelShipment", "orders", "COMPENSATING")
    live = [
        *timeline(PLACED, RESERVED, CANCEL, CANCEL_SHIPMENT),
        TimelineStep(*resent, "re-sent, attempt 1", position=5),
        *timeline(("n", "NotificationSent", "notifications", "COMPENSATING")),
    ]
    replayed = [
        *timeline(PLACED, RESERVED, CANCEL, CANCEL_SHIPMENT),
        TimelineStep("n", "NotificationSent", "notifications", "COMPENSATING", None, position=5),
        TimelineStep(*resent, "re-sent, attempt 1", position=6),
    ]

    assert timeline_differences(live, replayed) == []
