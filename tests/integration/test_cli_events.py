"""`pipeline events tail|dump|load` on the real broker of the running pipeline.

The CLI runs in-process (typer's CliRunner, in a thread of its own because each command runs
its own event loop) with the orders service's environment; `--follow` runs as the installed
`pipeline` program, since only a real process can be interrupted with Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import Result

from kit.avro_codec import SchemaStore
from kit.envelope import Envelope
from kit.settings import REPO_ROOT
from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from tests.integration.cli import pipeline_cli
from tests.integration.helpers import PipelineClient

pytestmark = pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)

SCHEMAS = SchemaStore.load(REPO_ROOT / "schemas")
PARTITIONS = 6  # as orders.events: a record loaded by key lands in the same partition


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def dumped(path: Path) -> list[dict[str, Any]]:
    """A jsonl dump's records as Kafka would give them back, wherever they were written."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        del record["topic"], record["offset"]
    return sorted(records, key=lambda r: (r["partition"], r["timestamp_ms"], r["value"] or ""))


@pytest.fixture
async def scratch_topic(pipeline: Pipeline) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Makes new topics of their own for a test; deleted after it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.bootstrap)
    await admin.start()
    created: list[str] = []

    async def create(partitions: int = PARTITIONS) -> str:
        name = f"cli-test.{uuid.uuid4().hex[:12]}"
        await admin.create_topics([NewTopic(name, partitions, 1)])
        created.append(name)
        return name

    try:
        yield create
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.close()


@pytest.fixture(scope="module")
def completed_order(client: PipelineClient) -> str:
    order_id: str = client.place(order_body([("T-MUG", 1)], customer="cli-events"))["order_id"]
    assert client.wait_settled([order_id])[order_id]["status"] == "COMPLETED"
    return order_id


def test_tail_shows_one_orders_events_with_their_key_headers_and_payload(
    pipeline: Pipeline, completed_order: str
) -> None:
    lines = json_lines(
        pipeline_cli(pipeline, "events", "tail", "orders.events", "--order", completed_order)
    )
    assert [line["event_type"] for line in lines] == ["OrderPlaced", "OrderCompleted"]
    for line in lines:
        assert line["topic"] == "orders.events"
        assert line["key"] == completed_order
        assert line["headers"]["correlation_id"] == completed_order
        assert line["headers"]["producer"] == "orders"
        assert line["headers"]["event_type"] == line["event_type"]
        assert line["payload"]["order_id"] == completed_order
        assert "decode_error" not in line
    placed, completed = lines
    assert placed["partition"] == completed["partition"]  # one key, one partition
    assert placed["offset"] < completed["offset"]
    assert placed["payload"]["lines"][0]["sku"] == "T-MUG"

    only = json_lines(
        pipeline_cli(
            pipeline, "events", "tail", "orders.events", "--order", completed_order,
            "--type", "OrderCompleted",
        )
    )  # fmt: skip
    assert only == [completed]
    one = json_lines(pipeline_cli(pipeline, "events", "tail", "orders.events", "--limit", "1"))
    assert len(one) == 1


def test_tail_starts_at_a_time_an_age_or_an_offset(
    pipeline: Pipeline, completed_order: str
) -> None:
    def tail_from(start: str) -> list[str]:
        result = pipeline_cli(
            pipeline, "events", "tail", "orders.events", "--order", completed_order, "--from", start
        )
        return [line["event_type"] for line in json_lines(result)]

    placed, completed = json_lines(
        pipeline_cli(pipeline, "events", "tail", "orders.events", "--order", completed_order)
    )
    assert tail_from(placed["timestamp"]) == ["OrderPlaced", "OrderCompleted"]
    assert tail_from(completed["timestamp"]) == ["OrderCompleted"]
    assert tail_from("1h") == ["OrderPlaced", "OrderCompleted"]
    assert tail_from(str(completed["offset"])) == ["OrderCompleted"]
    assert tail_from(str(placed["offset"])) == ["OrderPlaced", "OrderCompleted"]
    assert tail_from("end") == []


async def test_a_dumped_range_loads_into_another_topic_exactly_as_it_was(
    pipeline: Pipeline,
    completed_order: str,
    scratch_topic: Callable[..., Awaitable[str]],
    tmp_path: Path,
) -> None:
    placed, completed = json_lines(
        pipeline_cli(pipeline, "events", "tail", "orders.events", "--order", completed_order)
    )
    # --to is exclusive: up to the millisecond after the order's last event.
    end = datetime.fromisoformat(completed["timestamp"]) + timedelta(milliseconds=1)
    window = ["--from", placed["timestamp"], "--to", end.isoformat()]
    source_jsonl, source_avro = tmp_path / "source.jsonl", tmp_path / "source.avro"
    pipeline_cli(pipeline, "events", "dump", "orders.events", "--out", str(source_jsonl), *window)
    pipeline_cli(pipeline, "events", "dump", "orders.events", "-o", str(source_avro), *window)
    original = dumped(source_jsonl)
    key = base64.b64encode(completed_order.encode()).decode()
    assert len([r for r in original if r["key"] == key]) == 2

    for dump_file in (source_jsonl, source_avro):
        copy = await scratch_topic()
        loaded = pipeline_cli(pipeline, "events", "load", str(dump_file), "--topic", copy)
        assert f"loaded {len(original)} records" in loaded.stdout
        copied = tmp_path / f"{copy}.jsonl"
        pipeline_cli(pipeline, "events", "dump", copy, "--out", str(copied))
        assert dumped(copied) == original  # key, value, headers, timestamp and partition
        tailed = json_lines(
            pipeline_cli(pipeline, "events", "tail", copy, "--order", completed_order)
        )
        assert [_without_place(line) for line in tailed] == [
            _without_place(placed),
            _without_place(completed),
        ]


def _without_place(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in ("topic", "offset")}


async def test_a_dry_run_load_sends_nothing(
    pipeline: Pipeline,
    completed_order: str,
    scratch_topic: Callable[..., Awaitable[str]],
    tmp_path: Path,
) -> None:
    dump_file = tmp_path / "orders.jsonl"
    pipeline_cli(pipeline, "events", "dump", "orders.events", "--from", "1h", "-o", str(dump_file))
    count = len(dump_file.read_text().splitlines())
    copy = await scratch_topic()
    said = pipeline_cli(pipeline, "events", "load", str(dump_file), "--topic", copy, "--dry-run")
    assert said.stdout.startswith(f"dry run: would load {count} records")
    assert json_lines(pipeline_cli(pipeline, "events", "tail", copy)) == []


async def test_bytes_that_are_no_event_are_shown_with_a_decode_error_and_dumped_exactly(
    pipeline: Pipeline, scratch_topic: Callable[..., Awaitable[str]], tmp_path: Path
) -> None:
    topic = await scratch_topic(partitions=1)  # one partition: tail shows them in order
    event = Envelope("OrderCompleted", "order-x", {}, "order-x", producer="orders")
    valid = SCHEMAS.encode(
        "OrderCompleted", {"order_id": "order-x", "completed_at": datetime.now(UTC)}
    )
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await producer.start()
    try:
        for value, key, headers in [
            (b"\x00\x01 definitely not avro", b"\xff\xfe", [("event_type", b"\xff\x00")]),
            (valid[:11], b"order-x", [("event_type", b"OrderCompleted")]),  # cut short
            (None, b"order-x", []),  # a tombstone
            (valid, b"order-x", event.headers()),
        ]:
            await producer.send_and_wait(topic, value, key=key, headers=headers, partition=0)
    finally:
        await producer.stop()

    lines = json_lines(pipeline_cli(pipeline, "events", "tail", topic))
    assert [("payload" in line, "decode_error" in line) for line in lines] == [
        (False, True),
        (False, True),
        (False, True),
        (True, False),
    ]
    assert "bad marker" in lines[0]["decode_error"]
    assert lines[0]["key"] == "\ufffd\ufffd"
    assert "corrupt OrderCompleted" in lines[1]["decode_error"]
    assert "tombstone" in lines[2]["decode_error"]
    assert lines[3]["payload"]["order_id"] == "order-x"

    dump_file, copied = tmp_path / "garbage.avro", tmp_path / "copied.jsonl"
    pipeline_cli(pipeline, "events", "dump", topic, "--out", str(dump_file))
    copy = await scratch_topic(partitions=1)
    pipeline_cli(pipeline, "events", "load", str(dump_file), "--topic", copy)
    pipeline_cli(pipeline, "events", "dump", copy, "--out", str(copied))
    pipeline_cli(pipeline, "events", "dump", topic, "--out", str(tmp_path / "original.jsonl"))
    copied_records = dumped(copied)
    assert copied_records == dumped(tmp_path / "original.jsonl")
    assert len(copied_records) == 4


async def test_follow_prints_records_as_they_arrive_until_ctrl_c(
    pipeline: Pipeline, scratch_topic: Callable[..., Awaitable[str]]
) -> None:
    topic = await scratch_topic()
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await producer.start()
    follower = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "pipeline"), "events", "tail", topic, "--follow",
        "--from", "beginning",
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": pipeline.bootstrap},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # A shell starting pytest in the background ignores SIGINT, and children inherit it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    assert follower.stdout is not None and follower.stderr is not None

    printed = follower.stdout

    async def next_line() -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(await asyncio.wait_for(printed.readline(), 60))
        return decoded

    try:
        await producer.send_and_wait(topic, b"first", key=b"k1")
        assert (await next_line())["key"] == "k1"
        # Sent once the follower has printed the first: it can only come by following.
        await producer.send_and_wait(topic, b"second", key=b"k2")
        assert (await next_line())["key"] == "k2"
        follower.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(follower.wait(), timeout=30) == 130
        assert "Traceback" not in (await follower.stderr.read()).decode()
    finally:
        await producer.stop()
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
