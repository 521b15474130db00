"""200 orders placed at once all travel the whole pipeline, and every ledger agrees."""

from __future__ import annotations

from collections import Counter

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from tests.integration.helpers import PipelineClient, decoded_events, read_topic
from tests.integration.ledger import wait_quiet

ORDERS = 200


async def test_200_concurrent_orders_complete_and_every_service_agrees(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    warm_up = client.place(order_body([("T-TEE", 1)], customer="warm-up"))  # catalog has arrived
    client.wait_terminal([warm_up["order_id"]])
    await wait_quiet(client, timeout_s=120)  # no other scenario's order still moves stock
    stock_before = client.stock()
    bodies = [
        order_body([("T-MUG", 1 + n % 3), ("T-TEE", 1)], customer=f"c-{n % 17}")
        for n in range(ORDERS)
    ]
    order_ids = await client.place_concurrently(bodies)
    assert len(set(order_ids)) == ORDERS

    orders = client.wait_terminal(order_ids)
    assert Counter(o["status"] for o in orders.values()) == {"COMPLETED": ORDERS}
    await wait_quiet(client, timeout_s=120)  # the last notifications sent and answered

    ordered = Counter[str]()
    for body in bodies:
        for line in body["lines"]:
            ordered[line["sku"]] += line["quantity"]
    stock_after = client.stock()
    for sku, quantity in ordered.items():
        assert stock_after[sku][0] == stock_before[sku][0] - quantity, sku
        assert stock_after[sku][1] == stock_before[sku][1], f"{sku} left reserved"

    ours = set(order_ids)
    events = {
        topic: [
            e
            for e in decoded_events(await read_topic(pipeline.bootstrap, topic))
            if e[1].get("order_id") in ours
        ]
        for topic in (
            "inventory.events",
            "payments.events",
            "fulfillment.events",
            "notifications.events",
        )
    }
    placeholders = ",".join("?" * len(ours))

    captured = {
        p["order_id"]: p["amount"]
        for t, p, _ in events["payments.events"]
        if t == "PaymentCaptured"
    }
    assert captured == {oid: orders[oid]["total"] for oid in ours}
    payments = dict(
        client.query(
            "payments",
            "SELECT order_id, amount FROM payments"
            f" WHERE status = 'captured' AND order_id IN ({placeholders})",
            *ours,
        )
    )
    assert payments == captured

    reserved = Counter[tuple[str, str]]()
    for event_type, payload, _ in events["inventory.events"]:
        if event_type == "StockReserved":
            for line in payload["lines"]:
                reserved[(payload["order_id"], line["sku"])] += line["quantity"]
    shipped = Counter[tuple[str, str]]()
    for order_id, sku, quantity in client.query(
        "inventory",
        "SELECT order_id, sku, quantity FROM reservations"
        f" WHERE status = 'shipped' AND order_id IN ({placeholders})",
        *ours,
    ):
        shipped[(order_id, sku)] += quantity
    assert shipped == reserved

    delivered = {
        p["order_id"] for t, p, _ in events["fulfillment.events"] if t == "ShipmentDelivered"
    }
    assert delivered == ours
    shipments = client.query(
        "fulfillment",
        "SELECT order_id FROM shipments"
        f" WHERE status = 'delivered' AND order_id IN ({placeholders})",
        *ours,
    )
    assert {row[0] for row in shipments} == ours

    sent = Counter(
        p["template"] for t, p, _ in events["notifications.events"] if t == "NotificationSent"
    )
    assert sent == {"order_confirmation": ORDERS, "order_dispatched": ORDERS}
    logged = client.query(
        "notifications",
        "SELECT template, COUNT(*) FROM notification_log"
        f" WHERE status = 'sent' AND order_id IN ({placeholders}) GROUP BY template",
        *ours,
    )
    assert dict(logged) == dict(sent)

    timeline = [entry["event_type"] for entry in orders[order_ids[0]]["timeline"]]
    for step in (
        "OrderPlaced",
        "StockReserved",
        "PaymentCaptured",
        "ShipmentCreated",
        "ShipmentDispatched",
        "ShipmentDelivered",
        "OrderCompleted",
    ):
        assert step in timeline
