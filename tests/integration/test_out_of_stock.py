"""An order with one line the warehouses cannot cover is cancelled before any payment, and
the lines that could have been reserved are not held back either."""

from __future__ import annotations

from collections import Counter

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient
from tests.integration.ledger import assert_ledger


async def test_a_line_short_of_stock_cancels_the_order_without_payment(
    client: PipelineClient, initial_stock: Counter[str]
) -> None:
    order = client.place(order_body([("T-TEE", 1), ("T-RARE", 5)], customer="short"))
    final = client.wait_settled([order["order_id"]])[order["order_id"]]

    assert (final["status"], final["cancel_reason"]) == ("CANCELLED", "out_of_stock")
    timeline = [entry["event_type"] for entry in final["timeline"]]
    assert timeline.index("StockReservationFailed") < timeline.index("OrderCancelled")
    assert not {"PaymentCaptured", "PaymentFailed", "ReleaseStock"} & set(timeline)
    assert final["refunded"] == 0
    await assert_ledger(client, initial_stock)
    assert (
        client.query("payments", "SELECT * FROM payments WHERE order_id = ?", order["order_id"])
        == []
    )
    assert (
        client.query(
            "inventory",
            "SELECT * FROM reservations WHERE order_id = ? AND status <> 'released'",
            order["order_id"],
        )
        == []
    )
