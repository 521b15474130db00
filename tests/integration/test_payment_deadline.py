"""No answer from payments before the payment deadline: the saga compensates on its own.
The capture that arrives after the deadline is recorded, ignored and refunded.

Payments and fulfillment are stopped so that each step is held where the scenario wants it:
the deadline passes while payments is down; payments then captures (late) while the saga
still waits for fulfillment to confirm nothing ships; the refund is then held until
payments is back once more."""

from __future__ import annotations

from collections import Counter

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, ServiceControl
from tests.integration.ledger import assert_ledger


async def test_a_passed_payment_deadline_cancels_and_the_late_capture_is_refunded(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    services.restart("orders", {"PAYMENT_DEADLINE": "PT2S"})
    services.stop("payments")
    services.stop("fulfillment")
    order_id = client.place(order_body([("T-TEE", 1)], customer="deadline"))["order_id"]
    reserved = client.wait_status(order_id, "RESERVED")
    assert reserved["deadline_at"] is not None

    compensating = client.wait_awaiting(order_id, "COMPENSATING", ["ShipmentCancelled"])
    assert compensating["cancel_reason"] == "payment_deadline_exceeded"

    services.start("payments")  # it reads the order and the reservation, and captures: late
    late = client.wait_order(
        order_id,
        lambda o: any(e["event_type"] == "PaymentCaptured" for e in o["timeline"]),
        "told of the late capture",
    )
    [capture] = [e for e in late["timeline"] if e["event_type"] == "PaymentCaptured"]
    assert capture["status_after"] == "COMPENSATING"
    assert capture["note"]  # recorded, and why it was ignored
    services.stop("payments")

    services.start("fulfillment")
    client.wait_awaiting(order_id, "COMPENSATING", ["PaymentRefunded"])

    services.start("payments")
    final = client.wait_settled([order_id])[order_id]
    assert (final["status"], final["cancel_reason"]) == ("CANCELLED", "payment_deadline_exceeded")
    assert final["deadline_at"] is None
    assert final["refunded"] == final["total"]
    timeline = [entry["event_type"] for entry in final["timeline"]]
    assert timeline.index("PaymentRefunded") < timeline.index("OrderCancelled")
    await assert_ledger(client, initial_stock)
    assert client.query(
        "payments",
        "SELECT status, amount, refunded_amount FROM payments WHERE order_id = ?",
        order_id,
    ) == [("captured", final["total"], final["total"])]
