from __future__ import annotations

from kit.envelope import Envelope, envelope_from_headers, header_map, trace_id_of


def test_headers_carry_every_envelope_field_back() -> None:
    original = Envelope(
        event_type="OrderPlaced",
        key="o-1",
        payload={},
        correlation_id="o-1",
        causation_id="cause-1",
        producer="orders",
    )
    restored = envelope_from_headers(header_map(original.headers()), "o-1", {})
    assert restored == original


def test_a_caused_event_keeps_the_order_and_the_trace_but_not_the_span() -> None:
    cause = Envelope(event_type="OrderPlaced", key="o-1", payload={}, correlation_id="o-1")
    effect = cause.caused("StockReserved", {"order_id": "o-1"}, producer="inventory")
    assert effect.correlation_id == "o-1"
    assert effect.causation_id == cause.event_id
    assert effect.trace_id == cause.trace_id
    assert effect.traceparent != cause.traceparent
    assert effect.event_id != cause.event_id


def test_trace_id_is_read_from_a_w3c_traceparent_only() -> None:
    assert trace_id_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") == (
        "0af7651916cd43dd8448eb211c80319c"
    )
    assert trace_id_of("not-a-traceparent") is None
    assert trace_id_of(None) is None
