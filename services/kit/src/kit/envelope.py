"""The event envelope: what every message carries besides its Avro payload.

The payload is the domain record; the envelope is metadata, and travels in Kafka headers so
that a consumer can route, deduplicate and skip a message without decoding it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# W3C trace context is tracing's business; re-exported because every message carries it.
from kit.tracing import new_traceparent as new_traceparent
from kit.tracing import trace_id_of as trace_id_of

Headers = list[tuple[str, bytes]]

HEADER_EVENT_ID = "event_id"
HEADER_EVENT_TYPE = "event_type"
HEADER_CORRELATION_ID = "correlation_id"
HEADER_CAUSATION_ID = "causation_id"
HEADER_OCCURRED_AT = "occurred_at"
HEADER_TRACEPARENT = "traceparent"
HEADER_PRODUCER = "producer"


def new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Envelope:
    event_type: str
    key: str
    payload: Mapping[str, Any]
    correlation_id: str
    event_id: str = field(default_factory=new_event_id)
    causation_id: str | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    traceparent: str = field(default_factory=new_traceparent)
    producer: str = ""

    @property
    def trace_id(self) -> str | None:
        return trace_id_of(self.traceparent)

    def caused(
        self, event_type: str, payload: Mapping[str, Any], *, key: str | None = None, producer: str
    ) -> Envelope:
        """A message emitted while handling this one: same order, same trace; its parent
        span is the handler's own when tracing is on (see `kit.tracing.new_traceparent`)."""
        return Envelope(
            event_type=event_type,
            key=key if key is not None else self.key,
            payload=payload,
            correlation_id=self.correlation_id,
            causation_id=self.event_id,
            traceparent=new_traceparent(self.trace_id),
            producer=producer,
        )

    def headers(self) -> Headers:
        pairs = [
            (HEADER_EVENT_ID, self.event_id),
            (HEADER_EVENT_TYPE, self.event_type),
            (HEADER_CORRELATION_ID, self.correlation_id),
            (HEADER_OCCURRED_AT, self.occurred_at.isoformat()),
            (HEADER_TRACEPARENT, self.traceparent),
            (HEADER_PRODUCER, self.producer),
        ]
        if self.causation_id:
            pairs.append((HEADER_CAUSATION_ID, self.causation_id))
        return [(name, value.encode()) for name, value in pairs]


class MissingHeaderError(ValueError):
    pass


def header_map(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    return {name: value.decode("utf-8", "replace") for name, value in headers or ()}


def envelope_from_headers(
    headers: Mapping[str, str], key: str, payload: Mapping[str, Any]
) -> Envelope:
    try:
        return Envelope(
            event_id=headers[HEADER_EVENT_ID],
            event_type=headers[HEADER_EVENT_TYPE],
            key=key,
            payload=payload,
            correlation_id=headers.get(HEADER_CORRELATION_ID, key),
            causation_id=headers.get(HEADER_CAUSATION_ID),
            occurred_at=datetime.fromisoformat(headers[HEADER_OCCURRED_AT]),
            traceparent=headers.get(HEADER_TRACEPARENT) or new_traceparent(),
            producer=headers.get(HEADER_PRODUCER, ""),
        )
    except KeyError as missing:
        raise MissingHeaderError(f"message lacks the {missing.args[0]!r} header") from None
