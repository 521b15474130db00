"""Returns are for delivered orders inside the return window: outside it, or for an order
that never shipped, the request is refused and nothing moves."""

from __future__ import annotations

from collections import Counter

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, ServiceControl, problem_type
from tests.integration.ledger import assert_ledger


async def test_a_return_outside_the_window_or_of_an_undelivered_order_is_refused(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    services.restart("orders", {"RETURN_WINDOW": "PT0S"})  # closes the moment it is delivered
    delivered_id = client.place(order_body([("T-TEE", 1)], customer="late-return"))["order_id"]
    declined_id = client.place(
        order_body([("T-TEE", 1)], customer="never-paid", token="tok_chargeDeclined")
    )["order_id"]
    settled = client.wait_settled([delivered_id, declined_id])
    assert settled[delivered_id]["status"] == "COMPLETED"
    assert settled[declined_id]["status"] == "CANCELLED"

    late = client.request_return(delivered_id, [("T-TEE", 1)])
    assert late.status_code == 409, late.text
    assert problem_type(late) == "return-window-closed"
    undelivered = client.request_return(declined_id, [("T-TEE", 1)])
    assert undelivered.status_code == 409, undelivered.text
    assert problem_type(undelivered) == "order-not-delivered"
    unknown = client.request_return("00000000-0000-0000-0000-000000000000", [("T-TEE", 1)])
    assert unknown.status_code == 404, unknown.text

    for order_id in (delivered_id, declined_id):
        order = client.order(order_id)
        assert order["returns"] == []
        assert order["status"] == settled[order_id]["status"]
    await assert_ledger(client, initial_stock)
