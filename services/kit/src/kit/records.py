"""A Kafka record held in memory: read back from a topic for a replay, or made by a test.

It is a `kit.consumer.ConsumedRecord` (what the batch consumer handles) with the timestamp
the broker stamped, which a replay orders records by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: int = 0  # ms since the epoch

    @classmethod
    def of(cls, record: Any) -> StoredRecord:
        """From anything shaped like aiokafka's ConsumerRecord (a null header value: b"")."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple((name, value or b"") for name, value in record.headers or ()),
            timestamp=record.timestamp,
        )
