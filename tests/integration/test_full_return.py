"""A delivered order returned in full: label, parcel received, every line restocked and the
whole total refunded, shipping included; the customer hears of each step."""

from __future__ import annotations

from collections import Counter

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient
from tests.integration.ledger import assert_ledger


async def test_a_full_return_restocks_everything_and_refunds_the_total_with_shipping(
    client: PipelineClient, initial_stock: Counter[str]
) -> None:
    order_id = client.place(order_body([("T-MUG", 2), ("T-TEE", 1)], customer="full-return"))[
        "order_id"
    ]
    delivered = client.wait_settled([order_id])[order_id]
    assert delivered["status"] == "COMPLETED"
    assert delivered["shipping"] > 0  # below the free-shipping threshold: it is refunded too

    response = client.request_return(order_id, [("T-MUG", 2), ("T-TEE", 1)], "too small")
    assert response.status_code == 202, response.text
    requested = response.json()
    return_id = requested["return_id"]
    assert response.headers["location"] == f"/v1/orders/{order_id}"  # the return shows there
    assert (requested["order_id"], requested["status"], requested["reason"]) == (
        order_id,
        "requested",
        "too small",
    )
    assert sorted((line["sku"], line["quantity"]) for line in requested["lines"]) == [
        ("T-MUG", 2),
        ("T-TEE", 1),
    ]

    labelled = client.wait_order(
        order_id, lambda o: o["returns"][0]["status"] == "label_issued", "given a return label"
    )
    label = labelled["returns"][0]["label_reference"]
    assert label
    at_warehouse = client.warehouse_return(return_id)
    assert at_warehouse.status_code == 200, at_warehouse.text
    assert at_warehouse.json()["label_reference"] == label

    received = client.receive_return(return_id)
    assert received.status_code == 202, received.text
    assert client.receive_return(return_id).status_code == 200  # the same parcel, once

    final = client.wait_settled([order_id])[order_id]
    assert final["status"] == "RETURNED"
    assert final["refunded"] == delivered["total"]
    [done] = final["returns"]
    assert (done["status"], done["refund_amount"]) == ("refunded", delivered["total"])
    assert done["completed_at"] is not None
    timeline = [entry["event_type"] for entry in final["timeline"]]
    for step in (
        "ReturnRequested",
        "ReturnLabelIssued",
        "ReturnReceived",
        "RestockItems",
        "StockRestocked",
        "RefundPayment",
        "PaymentRefunded",
        "OrderReturned",
    ):
        assert step in timeline, (step, timeline)
    assert client.receive_return("no-such-return").status_code == 404
    await assert_ledger(client, initial_stock)

    templates = {
        template
        for (template,) in client.query(
            "notifications", "SELECT template FROM notification_log WHERE order_id = ?", order_id
        )
    }
    # Return approved (label issued), parcel received, refund processed: three more than
    # the confirmation and the dispatch notice.
    assert len(templates) >= 5, templates
