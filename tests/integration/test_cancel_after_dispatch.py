"""Once the goods have left the warehouse a cancellation is refused with a problem that
points to returns, and the order carries on untouched."""

from __future__ import annotations

from collections import Counter

import httpx

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, ServiceControl, problem_type
from tests.integration.ledger import assert_ledger


def assert_too_late(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert problem_type(response).endswith("cancel-too-late")
    assert "return" in response.json()["detail"].lower()


async def test_cancel_after_dispatch_is_refused_and_points_to_returns(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    # Parcels spend a few seconds with the carrier: dispatched, not yet delivered.
    services.restart("fulfillment", {"DELIVERY_DELAY_S": "6"})
    order_id = client.place(order_body([("T-MUG", 1)], customer="too-late"))["order_id"]
    in_transit = client.wait_order(
        order_id,
        lambda o: any(e["event_type"] == "ShipmentDispatched" for e in o["timeline"]),
        "dispatched",
    )
    assert in_transit["status"] == "FULFILLING"
    assert_too_late(client.cancel(order_id))

    final = client.wait_settled([order_id])[order_id]
    assert (final["status"], final["cancel_reason"], final["refunded"]) == ("COMPLETED", None, 0)
    assert_too_late(client.cancel(order_id))
    assert client.cancel("00000000-0000-0000-0000-000000000000").status_code == 404

    after = client.order(order_id)
    assert after["status"] == "COMPLETED"
    commands = {"CancelShipment", "ReleaseStock", "RefundPayment", "OrderCancelled"}
    assert not commands & {entry["event_type"] for entry in after["timeline"]}
    await assert_ledger(client, initial_stock)
