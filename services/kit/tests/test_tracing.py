"""Traces: each hop's span is the child of the one before, and what it emits names it.

Spans go to an in-memory exporter here, and once over real OTLP/HTTP to a local receiver.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sample_service import SCHEMAS, SampleDatabase, order_completed, outbox, record_completion
from sqlalchemy import select

from kit import tracing
from kit.consumer import BatchProcessor, Subscription
from kit.envelope import Envelope, trace_id_of
from kit.logs import json_handler
from kit.testing import service_harness
from kit.testing.otlp import OtlpReceiver, otlp_receiver
from kit.unit_of_work import UnitOfWork

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SENDER_SPAN_ID = "b7ad6b7169203331"
SENDER = f"00-{TRACE_ID}-{SENDER_SPAN_ID}-01"

handler_log = logging.getLogger("tests.tracing.handler")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for one test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "sample"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SampleDatabase]:
    database = SampleDatabase(f"sqlite:///{tmp_path / 'sample.db'}")
    yield database
    database.engine.dispose()


LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """What `handler_log` wrote so far, as the service's JSON lines would show it."""
    stream = io.StringIO()
    handler = json_handler("sample", stream)
    handler_log.addHandler(handler)
    handler_log.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        handler_log.removeHandler(handler)


def completing_and_logging(envelope: Envelope, uow: UnitOfWork) -> None:
    handler_log.info("order %s completed", envelope.payload["order_id"])
    record_completion(envelope, uow)


def handle(db: SampleDatabase, envelope: Envelope) -> dict[str, str]:
    """Handles `envelope` like the consumer would; returns the headers of what it emitted."""
    subscription = Subscription(("orders.events",), {"OrderCompleted": completing_and_logging})
    processor = BatchProcessor(subscription, SCHEMAS, db.unit_of_work, group_id="sample")
    record = service_harness.record_of(envelope, SCHEMAS, "orders.events", offset=41)
    assert processor.process([record]).handled == 1
    with db.engine.connect() as connection:
        [headers] = connection.execute(select(outbox.c.headers)).scalars()
    return dict(headers)


def hex_span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def only(spans: InMemorySpanExporter) -> ReadableSpan:
    [span] = spans.get_finished_spans()
    return span


def test_a_handled_message_is_a_consumer_span_child_of_the_senders_span(
    db: SampleDatabase, spans: InMemorySpanExporter
) -> None:
    handle(db, replace(order_completed("o-1"), traceparent=SENDER))

    span = only(spans)
    assert span.kind is SpanKind.CONSUMER
    assert span.name == "process OrderCompleted"
    assert span.context is not None and f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == SENDER_SPAN_ID
    assert span.attributes is not None
    assert span.attributes["messaging.system"] == "kafka"
    assert span.attributes["messaging.destination.name"] == "orders.events"
    assert span.attributes["messaging.kafka.offset"] == 41
    assert span.attributes["messaging.kafka.message.key"] == "o-1"
    assert span.attributes["order.id"] == "o-1"


def test_what_a_handler_emits_names_the_handlers_span_as_its_parent(
    db: SampleDatabase, spans: InMemorySpanExporter
) -> None:
    emitted = handle(db, replace(order_completed("o-1"), traceparent=SENDER))

    assert emitted["traceparent"] == f"00-{TRACE_ID}-{hex_span_id(only(spans))}-01"


def test_log_lines_written_while_handling_carry_the_messages_ids_and_the_span(
    db: SampleDatabase, spans: InMemorySpanExporter, log_lines: LogLines
) -> None:
    cause = replace(order_completed("o-1"), traceparent=SENDER)
    handle(db, cause)
    handler_log.info("between messages")

    handling, between = log_lines()
    assert handling["message"] == "order o-1 completed"
    assert handling["service"] == "sample"
    assert handling["event_id"] == cause.event_id
    assert handling["correlation_id"] == "o-1"
    assert handling["trace_id"] == TRACE_ID
    assert handling["span_id"] == hex_span_id(only(spans))
    assert between["service"] == "sample"
    assert not {"event_id", "correlation_id", "trace_id", "span_id"} & between.keys()


def test_with_tracing_off_the_trace_id_still_flows_and_logs_still_carry_it(
    db: SampleDatabase, log_lines: LogLines
) -> None:
    assert not tracing.tracing_enabled()
    emitted = handle(db, replace(order_completed("o-1"), traceparent=SENDER))

    assert trace_id_of(emitted["traceparent"]) == TRACE_ID
    assert emitted["traceparent"] != SENDER  # a span id of its own
    [handling] = log_lines()
    assert handling["trace_id"] == TRACE_ID
    assert "span_id" not in handling


def test_a_published_message_gets_a_producer_span_that_its_traceparent_names(
    spans: InMemorySpanExporter,
) -> None:
    staged = [("event_id", b"e-1"), ("traceparent", SENDER.encode()), ("producer", b"sample")]
    with tracing.publish_spans() as publishing:
        sent = dict(publishing.traced("orders.events", "o-1", "OrderCompleted", staged))

    span = only(spans)
    assert span.kind is SpanKind.PRODUCER
    assert span.name == "send OrderCompleted"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == SENDER_SPAN_ID
    assert sent["traceparent"].decode() == f"00-{TRACE_ID}-{hex_span_id(span)}-01"
    assert sent["event_id"] == b"e-1"
    assert span.attributes is not None and span.attributes["messaging.message.id"] == "e-1"


def test_a_failed_publish_ends_its_spans_as_errors(spans: InMemorySpanExporter) -> None:
    def publish_to_a_lost_broker() -> None:
        with tracing.publish_spans() as publishing:
            publishing.traced("orders.events", "o-1", "OrderCompleted", [("traceparent", b"")])
            raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        publish_to_a_lost_broker()

    span = only(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.parent is None  # nothing to continue: a trace of its own


def test_publishing_with_tracing_off_sends_the_headers_as_staged() -> None:
    staged = [("traceparent", SENDER.encode())]
    with tracing.publish_spans() as publishing:
        assert publishing.traced("orders.events", "o-1", "OrderCompleted", staged) is staged


def gateway() -> FastAPI:
    """Wired like kit.service.create_app: FastAPI's SERVER span, the kit's log context."""
    app = FastAPI(telemetry=tracing.fastapi_telemetry())
    app.add_middleware(tracing.TraceRequests)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str | None]:
        handler_log.info("item %s read", item_id)
        return {"traceparent": tracing.current_traceparent()}

    @app.get("/health")
    async def health() -> dict[str, str | None]:
        return {"traceparent": tracing.current_traceparent()}

    return app


async def get(path: str, **headers: str) -> dict[str, str | None]:
    transport = httpx.ASGITransport(app=gateway())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 200
    body: dict[str, str | None] = response.json()
    return body


async def test_a_request_is_a_server_span_continuing_the_callers_trace(
    spans: InMemorySpanExporter, log_lines: LogLines
) -> None:
    answer = await get("/items/7", traceparent=SENDER)

    span = only(spans)
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /items/{item_id}"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == SENDER_SPAN_ID
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert answer["traceparent"] == f"00-{TRACE_ID}-{hex_span_id(span)}-01"
    [line] = log_lines()
    assert (line["trace_id"], line["span_id"]) == (TRACE_ID, hex_span_id(span))


async def test_a_request_without_traceparent_starts_a_trace(spans: InMemorySpanExporter) -> None:
    answer = await get("/items/7")

    span = only(spans)
    assert span.parent is None
    assert span.context is not None
    assert trace_id_of(answer["traceparent"]) == f"{span.context.trace_id:032x}"


async def test_health_checks_and_scrapes_are_not_traced(spans: InMemorySpanExporter) -> None:
    assert (await get("/health", traceparent=SENDER))["traceparent"] is None
    assert spans.get_finished_spans() == ()


async def test_with_tracing_off_a_request_still_joins_the_callers_trace(
    log_lines: LogLines,
) -> None:
    answer = await get("/items/7", traceparent=SENDER)

    assert trace_id_of(answer["traceparent"]) == TRACE_ID
    assert answer["traceparent"] != SENDER
    [line] = log_lines()
    assert line["trace_id"] == TRACE_ID
    started = await get("/items/7", traceparent="00-not-a-trace-context-01")
    assert trace_id_of(started["traceparent"]) not in (None, TRACE_ID)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as server:
        yield server


def test_spans_are_exported_over_otlp_http_with_the_service_name(
    db: SampleDatabase, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    assert tracing.configure_tracing("sample-service")
    try:
        handle(db, replace(order_completed("o-1"), traceparent=SENDER))
    finally:
        tracing.shutdown_tracing()  # flushes the batch processor: the export happens here

    [(service, span)] = receiver.spans()
    assert service == "sample-service"
    assert span.name == "process OrderCompleted"
    assert span.kind == SpanProto.SPAN_KIND_CONSUMER
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == SENDER_SPAN_ID


def test_tracing_stays_off_without_an_endpoint_or_when_the_sdk_is_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert not tracing.configure_tracing("sample-service")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.configure_tracing("sample-service")
    assert not tracing.tracing_enabled()
