"""A message of garbage bytes is dead-lettered with its reason; the orders after it complete."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from tests.integration.helpers import CONSUMED_TOPICS, PipelineClient, read_topic, wait_caught_up


async def test_garbage_lands_in_the_dlq_with_its_reason_and_later_orders_complete(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    poison_key = f"poisoned-{uuid.uuid4()}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            "orders.events",
            b"\x00\x01 definitely not avro",
            key=poison_key,
            headers=[("event_id", b"poison-1"), ("event_type", b"OrderPlaced")],
        )
    finally:
        await producer.stop()

    orders = [
        client.place(order_body([("T-MUG", 1)], customer=f"after-poison-{n}")) for n in range(5)
    ]
    finished = client.wait_terminal([o["order_id"] for o in orders])
    assert {o["status"] for o in finished.values()} == {"COMPLETED"}
    await wait_caught_up(pipeline.bootstrap)

    dead = [
        r for r in await read_topic(pipeline.bootstrap, "orders.events.dlq") if r.key == poison_key
    ]
    groups = {dict(r.headers)["dlq.consumer.group"].decode() for r in dead}
    readers = {group for group, topics in CONSUMED_TOPICS.items() if "orders.events" in topics}
    assert groups == readers  # every service reading the topic dead-lettered it, once
    assert len(dead) == len(readers)
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert record.value == b"\x00\x01 definitely not avro"
        assert headers["dlq.error.type"] == "DecodeError"
        assert "bad marker" in headers["dlq.error.message"]
        assert headers["dlq.source.topic"] == "orders.events"
        assert headers["event_id"] == "poison-1"
