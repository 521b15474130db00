"""OrderPlaced v2 on a real broker: every consumer handles it, v1 records still read, and the
topics carry the retention topics.toml gives them (docs/ARCHITECTURE.md, "Schema evolution").

The v1 record goes to a scratch topic of its own: on orders.events the services would act
on it as a real order.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from kit.avro_codec import HEADER_LENGTH, DecodeError, SchemaStore
from kit.envelope import header_map
from kit.settings import REPO_ROOT
from kit.testing import service_harness
from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from kit.testing.servers import KAFKACTL, kafkactl
from tests.integration.helpers import SCHEMAS, PipelineClient, read_topic, wait_caught_up

THIRTY_DAYS_MS = "2592000000"


@pytest.fixture
def v1_store(tmp_path: Path) -> SchemaStore:
    """The schemas of a release before OrderPlaced v2."""
    release = tmp_path / "schemas-v1"
    shutil.copytree(REPO_ROOT / "schemas", release)
    (release / "orders" / "OrderPlaced.v2.avsc").unlink()
    return SchemaStore.load(release)


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def scratch_topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    """A one-partition topic of this test's own (30 days' retention), deleted after it."""
    name = f"scratch.schema-evolution.{uuid.uuid4().hex[:8]}"
    await admin.create_topics(
        [NewTopic(name, 1, 1, topic_configs={"retention.ms": THIRTY_DAYS_MS})]
    )
    try:
        yield name
    finally:
        await admin.delete_topics([name])


async def topic_config(admin: AIOKafkaAdminClient, topic: str, key: str) -> str:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {key: None})
    (response,) = await admin.describe_configs([resource])
    ((error_code, _message, _type, _name, entries, *_),) = response.resources
    assert error_code == 0
    values = {entry[0]: entry[1] for entry in entries}
    return str(values[key])


async def test_an_order_placed_as_v2_is_handled_by_every_consumer(
    client: PipelineClient, pipeline: Pipeline, v1_store: SchemaStore
) -> None:
    body = {**order_body([("T-MUG", 1)], customer="schema-evolution"), "sales_channel": "app"}
    order_id = client.place(body)["order_id"]

    assert client.wait_settled([order_id])[order_id]["status"] == "COMPLETED"
    await wait_caught_up(pipeline.bootstrap)

    (placed,) = [
        r
        for r in await read_topic(pipeline.bootstrap, "orders.events")
        if r.key == order_id.encode() and header_map(r.headers)["event_type"] == "OrderPlaced"
    ]
    v2 = SCHEMAS.latest("OrderPlaced")
    assert v2.version == 2
    assert placed.value[2:HEADER_LENGTH] == v2.fingerprint
    assert SCHEMAS.decode(placed.value)[1]["sales_channel"] == "app"
    # Their handlers predate the field: each service took the order its own way.
    for service, sql, expected in [
        ("inventory", "SELECT outcome FROM reservation_requests WHERE order_id = ?", "reserved"),
        ("payments", "SELECT status FROM payments WHERE order_id = ?", "captured"),
        ("fulfillment", "SELECT status FROM shipments WHERE order_id = ?", "delivered"),
        (
            "notifications",
            "SELECT template FROM notification_log WHERE order_id = ?",
            "order_confirmation",
        ),
    ]:
        assert (expected,) in client.query(service, sql, order_id), service
    dead = await read_topic(pipeline.bootstrap, "orders.events.dlq")
    assert [r for r in dead if r.key == order_id.encode()] == []
    # A consumer still on the release before v2 could not read it: hence "consumers first".
    with pytest.raises(DecodeError, match="unknown schema fingerprint"):
        v1_store.decode(placed.value)


async def test_a_v1_record_already_in_a_topic_reads_with_the_current_schemas(
    kafka_bootstrap: str, scratch_topic: str, v1_store: SchemaStore
) -> None:
    envelope = service_harness.order_placed(f"o-{uuid.uuid4()}")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            scratch_topic,
            v1_store.encode("OrderPlaced", envelope.payload),
            key=envelope.key.encode(),
            headers=envelope.headers(),
        )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(scratch_topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        record = await consumer.getone()
    finally:
        await consumer.stop()

    assert record.value[2:HEADER_LENGTH] == v1_store.latest("OrderPlaced").fingerprint
    event_type, payload = SCHEMAS.decode(record.value)
    assert event_type == "OrderPlaced"
    assert payload["sales_channel"] == "web"
    assert payload["order_id"] == envelope.key


async def test_topics_carry_topics_toml_and_a_change_applies_with_the_documented_command(
    kafka_bootstrap: str, admin: AIOKafkaAdminClient, scratch_topic: str
) -> None:
    report = kafkactl().create_topics(kafka_bootstrap)
    assert report.created == []
    assert report.drift == []  # every topic has the partitions and configs of the file

    # The command docs/EVENTS.md and topics.toml give for a topic that already exists.
    assert await topic_config(admin, scratch_topic, "retention.ms") == THIRTY_DAYS_MS
    command = [
        sys.executable, str(KAFKACTL), "run-class", "kafka.admin.ConfigCommand",
        "--bootstrap-server", kafka_bootstrap, "--alter", "--entity-type", "topics",
        "--entity-name", scratch_topic, "--add-config", "retention.ms=-1",
    ]  # fmt: skip
    altered = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, check=False
    )

    assert altered.returncode == 0, altered.stdout + altered.stderr
    assert await topic_config(admin, scratch_topic, "retention.ms") == "-1"
