"""A customer cancels before the goods leave: the saga undoes exactly what had happened at
that stage, shows which acknowledgements it still waits for, and ends CANCELLED.

Each stage is held by stopping the service that would move the order past it, so the
cancellation meets the order there and its compensation waits for that service."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, ServiceControl
from tests.integration.ledger import assert_ledger


def cancel_accepted(client: PipelineClient, order_id: str) -> dict[str, Any]:
    response = client.cancel(order_id)
    assert response.status_code == 202, response.text
    order: dict[str, Any] = response.json()
    return order


def assert_cancelled_by_customer(order: dict[str, Any]) -> None:
    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "customer_cancelled")
    assert "OrderCancelled" in [entry["event_type"] for entry in order["timeline"]]


def captured_and_refunded(client: PipelineClient, order_id: str) -> list[tuple[Any, ...]]:
    return client.query(
        "payments",
        "SELECT amount, refunded_amount FROM payments WHERE order_id = ? AND status = 'captured'",
        order_id,
    )


async def test_cancel_while_pending_waits_for_the_stock_release(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    services.stop("inventory")
    order_id = client.place(order_body([("T-MUG", 2)], customer="cancel-pending"))["order_id"]
    assert client.order(order_id)["status"] == "PENDING"

    assert cancel_accepted(client, order_id)["status"] == "COMPENSATING"
    client.wait_awaiting(order_id, "COMPENSATING", ["StockReleased"])
    # Asking again while the compensation runs changes nothing and is still accepted.
    assert cancel_accepted(client, order_id)["status"] == "COMPENSATING"

    services.start("inventory")
    final = client.wait_settled([order_id])[order_id]
    assert_cancelled_by_customer(final)
    assert cancel_accepted(client, order_id)["status"] == "CANCELLED"
    await assert_ledger(client, initial_stock)
    assert captured_and_refunded(client, order_id) == []


async def test_cancel_while_reserved_waits_for_the_payment_side(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    services.stop("payments")
    order_id = client.place(order_body([("T-TEE", 1)], customer="cancel-reserved"))["order_id"]
    client.wait_status(order_id, "RESERVED")

    assert cancel_accepted(client, order_id)["status"] == "COMPENSATING"
    # The stock comes back at once; the payment side answers only once payments is back.
    client.wait_awaiting(order_id, "COMPENSATING", ["PaymentRefunded"])

    services.start("payments")
    final = client.wait_settled([order_id])[order_id]
    assert_cancelled_by_customer(final)
    await assert_ledger(client, initial_stock)


async def test_cancel_when_paid_stops_the_shipment_then_refunds(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    services.stop("fulfillment")
    order_id = client.place(order_body([("T-MUG", 1)], customer="cancel-paid"))["order_id"]
    paid = client.wait_status(order_id, "PAID")

    assert cancel_accepted(client, order_id)["status"] == "COMPENSATING"
    client.wait_awaiting(order_id, "COMPENSATING", ["ShipmentCancelled"])

    services.start("fulfillment")
    final = client.wait_settled([order_id])[order_id]
    assert_cancelled_by_customer(final)
    assert final["refunded"] == paid["total"]
    await assert_ledger(client, initial_stock)
    assert captured_and_refunded(client, order_id) == [(paid["total"], paid["total"])]
    assert client.query(
        "fulfillment", "SELECT status FROM shipments WHERE order_id = ?", order_id
    ) in (
        [],
        [("cancelled",)],
    )


async def test_cancel_while_fulfilling_before_dispatch_cancels_the_shipment(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    # A carrier that takes its time: the shipment exists and waits to be collected.
    services.restart("fulfillment", {"DISPATCH_DELAY_S": "60"})
    order_id = client.place(order_body([("T-TEE", 2)], customer="cancel-fulfilling"))["order_id"]
    fulfilling = client.wait_status(order_id, "FULFILLING")
    assert fulfilling["shipment"] is not None

    cancelling = cancel_accepted(client, order_id)
    assert (cancelling["status"], cancelling["awaiting"]) == ("COMPENSATING", ["ShipmentCancelled"])

    final = client.wait_settled([order_id])[order_id]
    assert_cancelled_by_customer(final)
    timeline = [entry["event_type"] for entry in final["timeline"]]
    assert (
        timeline.index("CancelShipment")
        < timeline.index("ShipmentCancelled")
        < timeline.index("OrderCancelled")
    )
    assert "ShipmentDispatched" not in timeline
    assert final["refunded"] == fulfilling["total"]
    await assert_ledger(client, initial_stock)
    assert client.query(
        "fulfillment", "SELECT status FROM shipments WHERE order_id = ?", order_id
    ) == [("cancelled",)]
