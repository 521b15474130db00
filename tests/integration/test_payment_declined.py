"""Every way a payment can fail (declined, no funds, provider error, provider silence, fraud)
releases the reserved stock and cancels the order with that reason; nothing is captured."""

from __future__ import annotations

from collections import Counter

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient
from tests.integration.ledger import assert_ledger

REASON_OF_TOKEN = {
    "tok_chargeDeclined": "declined",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "tok_processingError": "provider_error",
    "tok_timeout": "provider_timeout",
    "tok_fraudulent": "fraud_rejected",
}


async def test_each_payment_failure_releases_the_stock_and_cancels_with_its_reason(
    client: PipelineClient, initial_stock: Counter[str]
) -> None:
    placed = {
        token: client.place(order_body([("T-TEE", 2), ("T-MUG", 1)], token=token, customer=token))
        for token in REASON_OF_TOKEN
    }
    final = client.wait_settled(o["order_id"] for o in placed.values())

    for token, reason in REASON_OF_TOKEN.items():
        order = final[placed[token]["order_id"]]
        assert (order["status"], order["cancel_reason"]) == ("CANCELLED", reason), token
        timeline = [entry["event_type"] for entry in order["timeline"]]
        assert (
            timeline.index("PaymentFailed")
            < timeline.index("ReleaseStock")
            < timeline.index("StockReleased")
            < timeline.index("OrderCancelled")
        ), (token, timeline)
        assert "PaymentCaptured" not in timeline, token
    await assert_ledger(client, initial_stock)
    order_ids = [o["order_id"] for o in placed.values()]
    payments = client.query(
        "payments",
        f"SELECT status FROM payments WHERE order_id IN ({','.join('?' * len(order_ids))})",
        *order_ids,
    )
    assert sorted(status for (status,) in payments) == ["failed"] * len(order_ids)
