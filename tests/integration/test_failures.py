"""The failure paths the foundation already covers: no stock, and a declined payment."""

from __future__ import annotations

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from tests.integration.helpers import PipelineClient, wait_caught_up


async def test_an_order_for_more_than_the_stock_is_cancelled_without_payment(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    order = client.place(order_body([("T-RARE", 5)], customer="greedy"))
    final = client.wait_terminal([order["order_id"]])[order["order_id"]]
    assert (final["status"], final["cancel_reason"]) == ("CANCELLED", "out_of_stock")
    await wait_caught_up(pipeline.bootstrap)
    assert (
        client.query("payments", "SELECT * FROM payments WHERE order_id = ?", order["order_id"])
        == []
    )


async def test_a_declined_payment_releases_the_stock_and_cancels_the_order(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    client.wait_terminal([client.place(order_body([("T-TEE", 1)], customer="warm"))["order_id"]])
    await wait_caught_up(pipeline.bootstrap)
    before = client.stock()["T-TEE"]
    order = client.place(
        order_body([("T-TEE", 3)], token="tok_chargeDeclined", customer="declined")
    )
    final = client.wait_terminal([order["order_id"]])[order["order_id"]]
    assert (final["status"], final["cancel_reason"]) == ("CANCELLED", "declined")
    timeline = [entry["event_type"] for entry in final["timeline"]]
    assert (
        timeline.index("PaymentFailed")
        < timeline.index("ReleaseStock")
        < timeline.index("StockReleased")
    )
    await wait_caught_up(pipeline.bootstrap)
    assert client.stock()["T-TEE"] == before  # nothing shipped, nothing left reserved
