"""`pipeline order trace`: one order's messages from all five services in time order, with
the saga's timeline from the orders database under the messages it is about."""

from __future__ import annotations

import json
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from kit.testing.orders import order_body
from kit.testing.pipeline import SERVICES, Pipeline, wait_until
from tests.integration.cli import pipeline_cli
from tests.integration.helpers import PipelineClient

pytestmark = pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)

# The happy path, cause before effect.
CHAIN = (
    "OrderPlaced",
    "StockReserved",
    "PaymentCaptured",
    "ShipmentCreated",
    "ShipmentDispatched",
    "ShipmentDelivered",
    "OrderCompleted",
)


def traced(pipeline: Pipeline, order_id: str, *options: str) -> list[dict[str, Any]]:
    result = pipeline_cli(pipeline, "order", "trace", order_id, "--json", *options)
    return [json.loads(line) for line in result.stdout.splitlines()]


def kafka_types(rows: list[dict[str, Any]]) -> list[str]:
    return [row["event_type"] for row in rows if row["kind"] == "kafka"]


@pytest.fixture(scope="module")
def completed_order(client: PipelineClient) -> str:
    order_id: str = client.place(order_body([("T-TEE", 1)], customer="cli-trace"))["order_id"]
    assert client.wait_settled([order_id])[order_id]["status"] == "COMPLETED"
    return order_id


def test_trace_shows_every_services_messages_in_time_order_with_the_saga_interleaved(
    pipeline: Pipeline, completed_order: str
) -> None:
    def complete_trace() -> list[dict[str, Any]] | None:
        """Once the saga has recorded every message of the order (the last ones may still
        be on their way when the order reads COMPLETED)."""
        rows = traced(pipeline, completed_order)
        saga_after_each = all(
            after["kind"] == "saga" and after["about_previous_record"]
            for row, after in pairwise([*rows, {"kind": "end"}])
            if row["kind"] == "kafka" and "payload" in row  # not the garbage of the last test
        )
        has_chain = set(CHAIN) <= set(kafka_types(rows))
        notified = kafka_types(rows).count("NotificationSent") == 2
        return rows if saga_after_each and has_chain and notified else None

    rows = wait_until(complete_trace, 60, "the whole trace of the order", interval_s=0.5)
    messages = [row for row in rows if row["kind"] == "kafka"]
    assert {row["headers"]["producer"] for row in messages} == set(SERVICES)
    assert all(row["key"] == completed_order for row in messages)
    times = [row["time"] for row in messages]
    assert times == sorted(times)
    types = kafka_types(rows)
    assert [types.index(step) for step in CHAIN] == sorted(types.index(step) for step in CHAIN)
    assert types[0] == "OrderPlaced"

    for row, after in pairwise(rows):
        if after["kind"] == "saga" and after["about_previous_record"]:
            assert row["kind"] == "kafka"
            assert after["event_id"] == row["headers"]["event_id"]
    said = [row["saga"] for row in rows if row["kind"] == "saga"]
    for line in (
        "OrderPlaced sent, order PENDING",
        "StockReserved → RESERVED",
        "PaymentCaptured → PAID",
        "ShipmentCreated → FULFILLING",
        "ShipmentDelivered → COMPLETED",
        "OrderCompleted sent, order COMPLETED",
    ):
        assert line in said, said
    assert len([line for line in said if line.startswith("NotificationSent noted, order ")]) == 2

    table = pipeline_cli(pipeline, "order", "trace", completed_order).stdout.splitlines()
    assert table[0].startswith(f"order {completed_order}: {len(messages)} messages on 6 topics")
    assert table[1].split()[:4] == ["TIME", "(UTC)", "TOPIC", "TYPE"]
    reserved = next(i for i, line in enumerate(table) if " StockReserved " in line)
    assert "inventory.events" in table[reserved]
    assert table[reserved + 1].split(maxsplit=2) == ["└", "saga", "StockReserved → RESERVED"]


def test_without_the_orders_database_the_trace_shows_the_messages_alone(
    pipeline: Pipeline, completed_order: str, tmp_path: Path
) -> None:
    missing = tmp_path / "orders.db"
    table = pipeline_cli(
        pipeline, "order", "trace", completed_order, "--orders-db", f"sqlite:///{missing}"
    ).stdout.splitlines()
    assert table[0].endswith(f"saga timeline not shown: no orders database at sqlite:///{missing}")
    assert not missing.exists()
    assert not [line for line in table[1:] if "saga" in line.split()]
    assert any(" OrderPlaced " in line for line in table)
    assert any(" OrderCompleted " in line for line in table)

    rows = traced(pipeline, completed_order, "--orders-db", f"sqlite:///{missing}")
    assert {row["kind"] for row in rows} == {"kafka"}
    assert set(CHAIN) <= set(kafka_types(rows))


async def test_dead_letters_show_only_when_asked_for(pipeline: Pipeline) -> None:
    # Garbage keyed by an id of no order (a dead letter blocks its key, so not a real
    # order's): every service reading orders.events dead-letters it.
    key = f"cli-trace-poison-{uuid.uuid4()}"
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            "orders.events",
            b"\x00 not an event",
            key=key.encode(),
            headers=[("event_id", key.encode()), ("event_type", b"OrderPlaced")],
        )
    finally:
        await producer.stop()

    def dead_letters() -> list[dict[str, Any]]:
        rows = traced(pipeline, key, "--topics", "orders.events", "--include-dlq")
        return [row for row in rows if row["topic"] == "orders.events.dlq"]

    dead = wait_until(dead_letters, 60, "the dead letters of the garbage", interval_s=0.5)
    assert all("decode_error" in row and row["key"] == key for row in dead)
    assert {row["headers"]["dlq.source.topic"] for row in dead} == {"orders.events"}
    assert all(row["summary"].startswith("dead-lettered by ") for row in dead)
    without = traced(pipeline, key)
    assert [(row["topic"], row["summary"]) for row in without] == [
        ("orders.events", "undecodable: DecodeError: not Avro single-object encoded (bad marker)")
    ]
