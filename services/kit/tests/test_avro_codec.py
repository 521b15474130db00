from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kit.avro_codec import DecodeError, SchemaStore
from kit.settings import REPO_ROOT

SCHEMAS_DIR = REPO_ROOT / "schemas"


def test_a_payload_survives_the_round_trip_with_its_type() -> None:
    store = SchemaStore.load(SCHEMAS_DIR)
    moment = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    data = store.encode("OrderCompleted", {"order_id": "o-1", "completed_at": moment})
    assert data[:2] == b"\xc3\x01"
    assert store.decode(data) == ("OrderCompleted", {"order_id": "o-1", "completed_at": moment})


def test_the_fingerprint_is_the_schemas_crc64_little_endian() -> None:
    store = SchemaStore.load(SCHEMAS_DIR)
    version = store.latest("OrderCompleted")
    data = store.encode("OrderCompleted", {"order_id": "o", "completed_at": datetime.now(UTC)})
    assert data[2:10] == version.fingerprint
    assert len(version.fingerprint) == 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"garbage bytes", "bad marker"),
        (b"\xc3\x01" + b"\x00" * 8 + b"x", "unknown schema fingerprint"),
        (b"", "bad marker"),
    ],
)
def test_bytes_that_are_not_our_messages_are_rejected_with_a_reason(
    data: bytes, message: str
) -> None:
    with pytest.raises(DecodeError, match=message):
        SchemaStore.load(SCHEMAS_DIR).decode(data)


def test_a_truncated_datum_is_rejected() -> None:
    store = SchemaStore.load(SCHEMAS_DIR)
    data = store.encode("OrderCompleted", {"order_id": "o-1", "completed_at": datetime.now(UTC)})
    with pytest.raises(DecodeError, match="corrupt OrderCompleted"):
        store.decode(data[:-4])


def test_a_v1_message_is_read_with_the_v2_schema_and_gets_the_default(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR / "orders", schemas / "orders")
    v1_store = SchemaStore.load(schemas)
    v1_bytes = v1_store.encode(
        "OrderCompleted", {"order_id": "o-1", "completed_at": datetime.now(UTC)}
    )
    v2 = json.loads((schemas / "orders" / "OrderCompleted.v1.avsc").read_text())
    v2["fields"].append(
        {"name": "channel", "type": "string", "default": "web", "doc": "Sales channel"}
    )
    (schemas / "orders" / "OrderCompleted.v2.avsc").write_text(json.dumps(v2))
    event_type, record = SchemaStore.load(schemas).decode(v1_bytes)
    assert event_type == "OrderCompleted"
    assert record["channel"] == "web"
