"""Where a read starts and stops, and records as JSON: whatever bytes they hold."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest
from aiokafka import TopicPartition

from kit.avro_codec import SchemaStore
from kit.envelope import Envelope
from kit.settings import REPO_ROOT
from pipeline_cli.kafka_io import (
    Bounds,
    Edge,
    decode_record,
    epoch_ms,
    is_about_order,
    iso_time,
    json_safe,
    offsets_at,
    parse_position,
)

SCHEMAS = SchemaStore.load(REPO_ROOT / "schemas")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)
BOUNDS = Bounds(beginning={P0: 10, P1: 0}, end={P0: 50, P1: 5})


@dataclass(frozen=True)
class Record:
    """What aiokafka hands the CLI, built by hand."""

    value: bytes | None
    key: bytes | None = b"order-1"
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    topic: str = "payments.events"
    partition: int = 2
    offset: int = 7
    timestamp: int = epoch_ms(NOW)


def captured_value(order_id: str = "order-1") -> bytes:
    payload = {
        "order_id": order_id,
        "payment_id": "pay-1",
        "amount": 1234,
        "currency": "EUR",
        "provider_reference": "psp-9",
        "captured_at": NOW,
    }
    return SCHEMAS.encode("PaymentCaptured", payload)


def captured(order_id: str = "order-1") -> Record:
    envelope = Envelope("PaymentCaptured", order_id, {}, order_id, producer="payments")
    return Record(captured_value(order_id), headers=list(envelope.headers()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("beginning", Edge.BEGINNING),
        ("END", Edge.END),
        (" 1200 ", 1200),
        ("0", 0),
        ("90s", NOW - timedelta(seconds=90)),
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2025-02-28T08:30:00Z", datetime(2025, 2, 28, 8, 30, tzinfo=UTC)),
        (
            "2025-02-28T08:30:00+02:00",
            datetime(2025, 2, 28, 8, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_a_position_is_an_edge_an_offset_an_age_or_a_time(text: str, expected: object) -> None:
    assert parse_position(text, now=NOW) == expected


def test_a_time_without_a_zone_is_local_time() -> None:
    parsed = parse_position("2025-02-28T08:30:00")
    assert parsed == datetime(2025, 2, 28, 8, 30).astimezone()


@pytest.mark.parametrize("text", ["yesterday", "-5", "15 minutes", "1y", ""])
def test_anything_else_is_refused_naming_the_forms_that_work(text: str) -> None:
    with pytest.raises(ValueError, match=r"beginning.*end.*offset.*ISO-8601.*15m"):
        parse_position(text, now=NOW)


def test_edges_are_each_partitions_own() -> None:
    assert offsets_at(Edge.BEGINNING, BOUNDS) == {P0: 10, P1: 0}
    assert offsets_at(Edge.END, BOUNDS) == {P0: 50, P1: 5}


def test_an_offset_applies_to_every_partition_within_its_bounds() -> None:
    assert offsets_at(3, BOUNDS) == {P0: 10, P1: 3}
    assert offsets_at(20, BOUNDS) == {P0: 20, P1: 5}


def test_a_time_no_record_has_reached_yet_means_the_end() -> None:
    assert offsets_at(NOW, BOUNDS, {P0: 42, P1: None}) == {P0: 42, P1: 5}


def test_timestamps_are_iso_utc_to_the_millisecond() -> None:
    assert iso_time(epoch_ms(NOW) + 7) == "2025-03-01T12:00:00.007Z"
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"


def test_an_event_is_decoded_into_json_with_where_it_is_its_key_and_headers() -> None:
    record = captured()
    decoded = decode_record(record, SCHEMAS)
    assert json.loads(json.dumps(decoded)) == decoded  # JSON as it is
    assert decoded["topic"] == "payments.events"
    assert (decoded["partition"], decoded["offset"]) == (2, 7)
    assert decoded["timestamp"] == "2025-03-01T12:00:00.000Z"
    assert decoded["key"] == "order-1"
    assert decoded["event_type"] == "PaymentCaptured"
    assert decoded["headers"]["producer"] == "payments"
    assert decoded["headers"]["correlation_id"] == "order-1"
    assert decoded["payload"]["amount"] == 1234
    assert decoded["payload"]["captured_at"] == "2025-03-01T12:00:00+00:00"
    assert "decode_error" not in decoded


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b"\x00\x01 definitely not avro", "bad marker"),
        (b"\xc3\x01" + b"\x00" * 8 + b"datum", "unknown schema fingerprint"),
        (captured_value()[:12], "corrupt PaymentCaptured datum"),
        (None, "tombstone"),
    ],
)
def test_bytes_that_are_no_event_give_a_decode_error_never_an_exception(
    value: bytes | None, error: str
) -> None:
    record = Record(
        value,
        key=b"\xff\xfeorder",
        headers=[("event_type", b"OrderPlaced"), ("junk", b"\xff"), ("empty", None)],
    )
    decoded = decode_record(record, SCHEMAS)
    json.dumps(decoded)
    assert error in decoded["decode_error"]
    assert "payload" not in decoded
    assert decoded["event_type"] == "OrderPlaced"  # what the header claims
    assert decoded["key"] == "\ufffd\ufffdorder"
    assert decoded["headers"] == {"event_type": "OrderPlaced", "junk": "\ufffd", "empty": None}


def test_avro_values_become_json_safe() -> None:
    value = {
        "when": NOW,
        "raw": b"\x00\xff",
        "price": Decimal("12.30"),
        "id": UUID(int=1),
        "items": ({"n": 1}, None, 2.5, True),
    }
    assert json_safe(value) == {
        "when": "2025-03-01T12:00:00+00:00",
        "raw": "AP8=",
        "price": "12.30",
        "id": "00000000-0000-0000-0000-000000000001",
        "items": [{"n": 1}, None, 2.5, True],
    }


def test_a_record_is_about_an_order_by_its_key_or_its_correlation_header() -> None:
    assert is_about_order(captured("order-1"), "order-1")
    assert not is_about_order(captured("order-1"), "order-2")
    rekeyed = Record(b"", key=b"something-else", headers=[("correlation_id", b"order-1")])
    assert is_about_order(rekeyed, "order-1")
    assert not is_about_order(Record(b"", key=None, headers=[("producer", None)]), "order-1")
