"""`pipeline dlq list|show|redrive|purge` on a real broker with the real services: what each
shows, what a redrive and a purge make the services do, and what purge --all leaves."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline, wait_until
from tests.integration.cli import dlq, gauge, listed
from tests.integration.helpers import (
    CONSUMED_TOPICS,
    PipelineClient,
    ServiceControl,
    wait_caught_up,
)
from tests.integration.ledger import assert_ledger

pytestmark = pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)


def readers_of(topic: str) -> set[str]:
    return {group for group, topics in CONSUMED_TOPICS.items() if topic in topics}


async def produce_garbage(pipeline: Pipeline, topic: str, key: str, event_id: str) -> None:
    """Bytes no schema reads, under an event type nobody skips: every reader dead-letters it."""
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            b"\x00 not avro at all",
            key=key.encode(),
            headers=[("event_id", event_id.encode()), ("event_type", b"NotAnEvent")],
        )
    finally:
        await producer.stop()


def dlq_depth_gauge(pipeline: Pipeline, topic: str) -> float | None:
    """What orders (which watches every `*.dlq` topic) says `topic` holds."""
    return gauge(pipeline, "orders", "pipeline_dlq_messages", topic=topic)


async def test_list_and_show_tell_each_groups_dead_letter_and_redrive_sends_one_back(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    key, event_id = f"dlq-cli-{uuid.uuid4()}", f"garbage-{uuid.uuid4()}"
    await produce_garbage(pipeline, "payments.events", key, event_id)
    readers = readers_of("payments.events")

    def one_per_reader() -> list[dict[str, Any]] | None:
        found = listed(pipeline, "payments.events", key)
        return found if len(found) == len(readers) else None

    dead = wait_until(one_per_reader, 60, "every reader of payments.events to dead-letter it")
    assert {d["group"] for d in dead} == readers
    for one in dead:
        assert (one["source_topic"], one["event_type"], one["state"]) == (
            "payments.events",
            "NotAnEvent",
            "open",
        )
        assert (one["error_type"], one["attempts"], one["message_id"]) == (
            "DecodeError",
            1,
            event_id,
        )

    table = dlq(pipeline, "list", "--topic", "payments.events.dlq")
    assert table.returncode == 0, table.stderr
    columns = "ID SOURCE KEY EVENT TYPE GROUP ERROR ATTEMPTS FAILED AT STATE"
    assert table.stdout.splitlines()[0].split() == columns.split()
    assert all(one["id"] in table.stdout for one in dead)

    chosen = next(d for d in dead if d["group"] == "notifications")
    shown = dlq(pipeline, "show", chosen["id"])
    assert shown.returncode == 0, shown.stderr
    assert "payload: does not decode (DecodeError: not Avro single-object encoded" in shown.stdout
    assert f"event_id: {event_id}" in shown.stdout
    assert "dlq.consumer.group: notifications" in shown.stdout
    as_json = json.loads(dlq(pipeline, "show", chosen["id"], "--json").stdout)
    assert as_json["headers"]["dlq.source.topic"] == "payments.events"
    assert as_json["decode_error"].startswith("DecodeError")

    redriven = dlq(pipeline, "redrive", chosen["id"], "--yes")
    assert redriven.returncode == 0, redriven.stderr
    again = wait_until(
        lambda: [
            d
            for d in listed(pipeline, "payments.events", key)
            if d["group"] == "notifications" and d["id"] != chosen["id"]
        ],
        60,
        "notifications to dead-letter the redriven garbage again",
    )
    assert [(d["attempts"], d["redrives"], d["message_id"]) for d in again] == [(2, 1, event_id)]
    await wait_caught_up(pipeline.bootstrap)
    everything = listed(pipeline, "payments.events", key, "--all")
    per_group = Counter(d["group"] for d in everything)
    assert per_group == Counter({group: 1 for group in readers} | {"notifications": 2})
    assert {d["id"]: d["state"] for d in everything}[chosen["id"]] == "redriven"

    twice = dlq(pipeline, "redrive", chosen["id"], "--yes")
    assert twice.returncode == 1
    assert "already redriven" in twice.stderr
    missing = dlq(pipeline, "show", "payments.events.dlq:0:999999")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "pipeline: no dead letter payments.events.dlq:0:999999",
    )


async def test_purge_drops_the_dead_letter_and_releases_the_messages_parked_behind_it(
    client: PipelineClient,
    pipeline: Pipeline,
    services: ServiceControl,
    initial_stock: Counter[str],
) -> None:
    # Inventory fails on the order's OrderPlaced (inventory is down while the order is
    # placed, so the drill is on before the message arrives). The customer then cancels:
    # the saga's ReleaseStock for the order is parked behind the dead letter.
    services.stop("inventory")
    order_id = client.place(order_body([("T-TEE", 1)], customer="dlq-purge"))["order_id"]
    services.restart("inventory", {"DRILL_FAIL_MESSAGES": f"OrderPlaced:{order_id}"})
    blocking = "SELECT status FROM dead_letters WHERE key = ?"
    wait_until(
        lambda: client.query("inventory", blocking, order_id) == [("blocking",)],
        60,
        "inventory to dead-letter the OrderPlaced",
    )
    assert client.cancel(order_id).status_code == 202
    client.wait_awaiting(order_id, "COMPENSATING", ["StockReleased"])
    parked = "SELECT COUNT(*) FROM parked_messages WHERE key = ?"
    wait_until(
        lambda: client.query("inventory", parked, order_id)[0][0] >= 1,
        60,
        "the ReleaseStock to be parked in inventory",
    )
    [dead] = wait_until(
        lambda: [
            d
            for d in listed(pipeline, "orders.events", order_id)
            if d["group"] == "inventory" and d["state"] == "open"
        ],
        60,
        "`dlq list` to show the dead letter",
    )
    shown = dlq(pipeline, "show", dead["id"])
    assert "payload (OrderPlaced):" in shown.stdout
    assert f'"order_id": "{order_id}"' in shown.stdout
    assert "DrillFailure" in shown.stdout

    declined = dlq(pipeline, "purge", dead["id"], answer="n\n")
    assert declined.returncode == 1
    assert "Purge 1 dead letter?" in declined.stdout
    assert client.query("inventory", blocking, order_id) == [("blocking",)]

    purged = dlq(pipeline, "purge", dead["id"], "--yes")
    assert purged.returncode == 0, purged.stderr
    assert f"inventory releases key {order_id}" in purged.stdout
    # Released, the ReleaseStock is handled: it closes the door on the purged OrderPlaced
    # (nothing is ever reserved) and its acknowledgement lets the order settle.
    final = client.wait_settled([order_id])[order_id]
    assert (final["status"], final["cancel_reason"]) == ("CANCELLED", "customer_cancelled")
    assert client.query("inventory", blocking, order_id) == [("purged",)]
    assert client.query("inventory", parked, order_id) == [(0,)]
    reserved = "SELECT COUNT(*) FROM reservations WHERE order_id = ?"
    assert client.query("inventory", reserved, order_id) == [(0,)]
    assert listed(pipeline, "orders.events", order_id) == []
    states = [d["state"] for d in listed(pipeline, "orders.events", order_id, "--all")]
    assert states == ["purged"]
    again = dlq(pipeline, "purge", dead["id"], "--yes")
    assert (again.returncode, "already purged" in again.stderr) == (1, True)
    await assert_ledger(client, initial_stock)


async def test_purge_all_releases_every_key_and_empties_the_dead_letter_topic(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    key, event_id = f"dlq-purge-all-{uuid.uuid4()}", f"garbage-{uuid.uuid4()}"
    await produce_garbage(pipeline, "fulfillment.events", key, event_id)
    readers = readers_of("fulfillment.events")
    wait_until(
        lambda: len(listed(pipeline, "fulfillment.events", key)) == len(readers),
        60,
        "every reader of fulfillment.events to dead-letter the garbage",
    )
    wait_until(
        lambda: (dlq_depth_gauge(pipeline, "fulfillment.events.dlq") or 0) >= len(readers),
        30,
        "the dead-letter depth gauge to count them",
    )

    purged = dlq(pipeline, "purge", "--all", "--topic", "fulfillment.events", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert "fulfillment.events.dlq emptied" in purged.stdout
    nothing = dlq(pipeline, "list", "--topic", "fulfillment.events.dlq", "--all")
    assert nothing.returncode == 1
    assert "no dead letters in fulfillment.events.dlq" in nothing.stderr
    wait_until(
        lambda: dlq_depth_gauge(pipeline, "fulfillment.events.dlq") == 0,
        30,
        "the dead-letter depth gauge to drop to 0",
    )

    def purged_by_every_reader() -> bool:  # each dropped its dead letter, releasing the key
        statuses = [
            client.query(group, "SELECT status FROM dead_letters WHERE key = ?", key)
            for group in sorted(readers)
        ]
        return all(rows == [("purged",)] for rows in statuses)

    wait_until(purged_by_every_reader, 60, "every reader to mark its dead letter purged")
    empty = dlq(pipeline, "purge", "--all", "--topic", "fulfillment.events", "--yes")
    assert empty.returncode == 1  # nothing left to purge
