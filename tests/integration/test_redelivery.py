"""Re-publishing an event every service already handled (same event id) changes nothing."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from tests.integration.helpers import PipelineClient, read_topic
from tests.integration.ledger import wait_quiet

TABLES = {
    "orders": ("orders", "order_timeline"),
    "inventory": ("reservations", "stock_levels"),
    "payments": ("payments", "payment_intents"),
    "fulfillment": ("shipments", "shipping_orders"),
    "notifications": ("notification_log",),
}


def snapshot(client: PipelineClient) -> dict[str, list[tuple[object, ...]]]:
    state = {
        f"{service}.{table}": sorted(client.query(service, f"SELECT * FROM {table}"), key=repr)
        for service, tables in TABLES.items()
        for table in tables
    }
    # A redelivery must not emit anything either: every outbox has drained and stays empty.
    state |= {f"{s}.outbox": client.query(s, "SELECT COUNT(*) FROM outbox") for s in TABLES}
    return state


async def test_republishing_handled_events_changes_nothing(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    order = client.place(order_body([("T-TEE", 2)], customer="redelivery"))
    client.wait_terminal([order["order_id"]])
    # Not only read: answered too, every outbox drained (the last notification included).
    await wait_quiet(client, timeout_s=120)
    before = snapshot(client)

    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await producer.start()
    try:
        republished = 0
        for topic in ("orders.events", "inventory.events", "payments.events", "fulfillment.events"):
            for record in await read_topic(pipeline.bootstrap, topic):
                if record.key == order["order_id"].encode():
                    await producer.send_and_wait(
                        topic, record.value, key=record.key, headers=list(record.headers)
                    )
                    republished += 1
    finally:
        await producer.stop()
    assert republished >= 6  # OrderPlaced, StockReserved, PaymentCaptured, Shipment*

    await wait_quiet(client, timeout_s=120)
    assert snapshot(client) == before
    assert client.order(order["order_id"])["status"] == "COMPLETED"
