"""`pipeline dlq`: what it makes of a dead-letter topic's records and what it writes back.
Pure logic, no broker (tests/integration/test_cli_dlq.py runs the commands on a real one)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from kit.consumer import (
    HEADER_ATTEMPTS,
    HEADER_MESSAGE_ID,
    HEADER_REDRIVE_ATTEMPT,
    HEADER_REDRIVE_GROUP,
    HEADER_RELEASE_GROUP,
    HEADER_RELEASE_ID,
    RELEASE_EVENT_TYPE,
)
from pipeline_cli.dlq import (
    OPEN,
    PURGED,
    REDRIVEN,
    DeadLetter,
    dlq_topic,
    fold,
    marker_of,
    parse_id,
    redrive_of,
    release_of,
)
from pipeline_cli.kafka_io import RawRecord, epoch_ms
from pipeline_cli.main import app

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ORIGINAL_HEADERS = {
    "event_id": "e-1",
    "event_type": "OrderPlaced",
    "correlation_id": "o-1",
    "traceparent": "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
}


def dead_letter_record(
    offset: int = 3, key: bytes | None = b"o-1", dlq: Mapping[str, str] | None = None
) -> RawRecord:
    """A record of payments' dead letter on orders.events.dlq, as the consumer writes it."""
    headers = {
        **ORIGINAL_HEADERS,
        "dlq.error.type": "RuntimeError",
        "dlq.error.message": "handler bug",
        "dlq.source.topic": "orders.events",
        "dlq.source.partition": "4",
        "dlq.source.offset": "17",
        "dlq.attempts": "3",
        "dlq.consumer.group": "payments",
        "dlq.failed_at": "2025-03-01T11:59:00+00:00",
        "dlq.message.id": "e-1",
        **(dlq or {}),
    }
    return RawRecord(
        topic="orders.events.dlq",
        partition=0,
        offset=offset,
        timestamp_ms=epoch_ms(NOW),
        key=key,
        value=b"\xc3\x01avro",
        headers=tuple((name, value.encode()) for name, value in headers.items()),
    )


def headers_of(record: RawRecord) -> dict[str, str]:
    return {name: (value or b"").decode() for name, value in record.headers}


def test_markers_give_their_dead_letter_a_state_and_are_not_listed_themselves() -> None:
    redriven, purged, untouched = (dead_letter_record(offset) for offset in (0, 1, 2))
    records = [
        redriven,
        purged,
        untouched,
        marker_of(DeadLetter(redriven), REDRIVEN, NOW),
        marker_of(DeadLetter(purged), PURGED, NOW),
    ]
    folded = fold(records)
    assert [(d.id, d.state) for d in folded] == [
        ("orders.events.dlq:0:0", REDRIVEN),
        ("orders.events.dlq:0:1", PURGED),
        ("orders.events.dlq:0:2", OPEN),
    ]


def test_the_latest_marker_of_a_dead_letter_wins() -> None:
    record = dead_letter_record(0)
    first = marker_of(DeadLetter(record), REDRIVEN, NOW)
    later = marker_of(DeadLetter(record), PURGED, NOW.replace(minute=5))
    [dead] = fold([record, later, first])  # the order they are read in does not matter
    assert dead.state == PURGED


def test_a_redrive_is_the_original_message_for_its_group_alone_counting_on() -> None:
    dead = DeadLetter(dead_letter_record(dlq={"dlq.redrive.attempt": "1", "dlq.attempts": "6"}))
    redrive = redrive_of(dead, NOW)
    assert (redrive.topic, redrive.key, redrive.value) == ("orders.events", b"o-1", b"\xc3\x01avro")
    headers = headers_of(redrive)
    assert {k: v for k, v in headers.items() if not k.startswith("dlq.")} == ORIGINAL_HEADERS
    assert {k: v for k, v in headers.items() if k.startswith("dlq.")} == {
        HEADER_REDRIVE_GROUP: "payments",
        HEADER_REDRIVE_ATTEMPT: "2",
        HEADER_MESSAGE_ID: "e-1",
        HEADER_ATTEMPTS: "6",
    }


def test_a_dead_letter_without_a_message_id_header_is_named_as_the_consumer_names_it() -> None:
    from_before = dead_letter_record(dlq={"dlq.message.id": ""})
    assert DeadLetter(from_before).message_id == "e-1"  # the event id
    source = {"dlq.source.topic": "orders.events", "dlq.source.partition": "2"}
    garbage = RawRecord(
        "orders.events.dlq",
        0,
        9,
        0,
        None,
        b"junk",
        tuple((k, v.encode()) for k, v in {**source, "dlq.source.offset": "5"}.items()),
    )
    assert DeadLetter(garbage).message_id == "orders.events:2:5"  # where it was


def test_a_release_names_the_group_and_the_dead_letter_and_carries_no_value() -> None:
    release = release_of(DeadLetter(dead_letter_record()), NOW)
    assert release is not None
    assert (release.topic, release.key, release.value) == ("orders.events", b"o-1", None)
    assert headers_of(release) == {
        "event_type": RELEASE_EVENT_TYPE,
        HEADER_RELEASE_GROUP: "payments",
        HEADER_RELEASE_ID: "e-1",
    }


def test_nothing_is_released_for_a_message_without_a_key() -> None:
    assert release_of(DeadLetter(dead_letter_record(key=b"")), NOW) is None


def test_the_summary_says_what_list_shows() -> None:
    summary = DeadLetter(dead_letter_record()).summary()
    assert summary == {
        "id": "orders.events.dlq:0:3",
        "state": OPEN,
        "source_topic": "orders.events",
        "key": "o-1",
        "event_type": "OrderPlaced",
        "group": "payments",
        "error_type": "RuntimeError",
        "error_message": "handler bug",
        "attempts": 3,
        "redrives": 0,
        "failed_at": "2025-03-01T11:59:00+00:00",
        "message_id": "e-1",
    }


def test_only_an_open_dead_letter_of_a_known_group_can_be_redriven_or_purged() -> None:
    assert DeadLetter(dead_letter_record()).refusal() is None
    assert "already purged" in str(DeadLetter(dead_letter_record(), PURGED).refusal())
    foreign = DeadLetter(dead_letter_record(dlq={"dlq.consumer.group": ""}))
    assert "names no consumer group" in str(foreign.refusal())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("payments.events.dlq:0:3", ("payments.events.dlq", 0, 3)),
        (" orders.commands.dlq:2:1500 ", ("orders.commands.dlq", 2, 1500)),
    ],
)
def test_an_id_names_topic_partition_and_offset(text: str, expected: tuple[str, int, int]) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize("text", ["payments.events:0:3", "payments.events.dlq:0", "x.dlq:a:1", ""])
def test_anything_else_is_not_an_id(text: str) -> None:
    with pytest.raises(ValueError, match="is not a dead letter id"):
        parse_id(text)


def test_a_topic_is_named_as_itself_or_by_its_source() -> None:
    assert dlq_topic("payments.events") == dlq_topic("payments.events.dlq") == "payments.events.dlq"


@pytest.mark.parametrize(
    "args",
    [
        ["redrive"],
        ["redrive", "payments.events.dlq:0:1", "--all"],
        ["purge"],
        ["purge", "payments.events.dlq:0:1", "--topic", "payments.events"],
        ["show", "payments.events:0:1"],
    ],
)
def test_a_wrong_selection_is_a_usage_error_before_anything_is_read(args: list[str]) -> None:
    # No broker listens on port 1: a usage error must come first, with exit code 2.
    result = CliRunner().invoke(app, ["dlq", *args, "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
