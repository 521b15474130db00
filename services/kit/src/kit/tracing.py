"""OpenTelemetry traces: one tree per order, across every service, through Kafka headers.

W3C trace context travels in each message's `traceparent` header and in the gateway's
requests. With an OTLP endpoint configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) every process exports a SERVER span per request
(FastAPI's own), a CONSUMER span per handled message and a PRODUCER span per published
message, each the child of the one before, so a trace shows an order's whole path.

Without one, OpenTelemetry's no-op provider stays in place and the kit skips span work
entirely: the hot path pays a `None` check per message, and trace ids still flow (a fresh
span id per hop), so logs correlate either way.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

from kit.logs import log_context

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider

    from kit.consumer import ConsumedRecord
    from kit.envelope import Envelope

Headers = list[tuple[str, bytes]]

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_NO_TRACE = "0" * 32
_PROPAGATOR = TraceContextTextMapPropagator()
_UNTRACED: contextlib.nullcontext[None] = contextlib.nullcontext()

# The traceparent of the request being served: its SERVER span's, or with tracing off one
# of its own in the caller's trace. Lets the gateway hand it to what the request emits.
_request_traceparent: ContextVar[str | None] = ContextVar("request_traceparent", default=None)


class _Tracing:
    """The process's tracing state: a tracer only while spans are being exported."""

    tracer: Tracer | None = None
    provider: TracerProvider | None = None


_state = _Tracing()


# -- W3C trace context --------------------------------------------------------------------


def new_traceparent(trace_id: str | None = None) -> str:
    """The `traceparent` for a message emitted now, in `trace_id` (or in a new trace).

    While a span of that trace is active (tracing on), it is that span's own context, so the
    exported spans form one tree; otherwise a new span id in the same trace, so trace ids
    flow and logs correlate with tracing off too."""
    if _state.tracer is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid and (trace_id is None or f"{context.trace_id:032x}" == trace_id):
            return _traceparent_of(context)
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a well-formed W3C `traceparent`; None for anything else."""
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None or match[1] == _NO_TRACE:
        return None
    return match[1]


def current_traceparent() -> str | None:
    """Where the work in progress sits in its trace: the active span (tracing on) or the
    request being served (tracing off); None outside any request or traced message."""
    if _state.tracer is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return _traceparent_of(context)
    return _request_traceparent.get()


def _traceparent_of(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def _parent(traceparent: str | None) -> Context | None:
    # An absent or malformed traceparent extracts as an empty context: a new trace starts.
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}) if traceparent else None


@contextlib.contextmanager
def _logged(span: Span) -> Iterator[None]:
    context = span.get_span_context()
    with log_context(trace_id=f"{context.trace_id:032x}", span_id=f"{context.span_id:016x}"):
        yield


# -- the provider -------------------------------------------------------------------------


def configure_tracing(service_name: str) -> bool:
    """Exports spans over OTLP/HTTP (protobuf) when an endpoint is configured; True if so.

    The exporter and the batch processor read the standard OTEL_* variables themselves
    (headers, timeout, compression, OTEL_BSP_* queue sizes, OTEL_TRACES_SAMPLER).
    `OTEL_SDK_DISABLED=true` keeps tracing off whatever else is set."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return False
    # Imported here: a process that does not trace never loads the SDK and the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # for any library that traces through the global API
    use_tracer_provider(provider)
    return True


def use_tracer_provider(provider: TracerProvider) -> None:
    """Traces through `provider` (configure_tracing's, or a test's in-memory one)."""
    _state.provider = provider
    _state.tracer = provider.get_tracer("kit")


def shutdown_tracing() -> None:
    """Exports the spans still queued and turns tracing off; at service stop."""
    provider, _state.provider, _state.tracer = _state.provider, None, None
    if provider is not None:
        provider.shutdown()


def tracing_enabled() -> bool:
    return _state.tracer is not None


# -- spans --------------------------------------------------------------------------------


def consuming(
    record: ConsumedRecord, envelope: Envelope, group_id: str
) -> contextlib.AbstractContextManager[None]:
    """A CONSUMER span around one message's handling, child of the message's `traceparent`;
    its ids go into the log lines written meanwhile. A shared no-op when tracing is off."""
    tracer = _state.tracer
    if tracer is None:
        return _UNTRACED
    return _consumer_span(tracer, record, envelope, group_id)


@contextlib.contextmanager
def _consumer_span(
    tracer: Tracer, record: ConsumedRecord, envelope: Envelope, group_id: str
) -> Iterator[None]:
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.kafka.message.key": envelope.key,
        "messaging.consumer.group.name": group_id,
        "messaging.message.id": envelope.event_id,
        "messaging.message.conversation_id": envelope.correlation_id,
        "pipeline.event_type": envelope.event_type,
    }
    order_id = envelope.payload.get("order_id")
    if isinstance(order_id, str):
        attributes["order.id"] = order_id
    with (
        tracer.start_as_current_span(
            f"process {envelope.event_type}",
            context=_parent(envelope.traceparent),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ) as span,
        _logged(span),
    ):
        yield


class PublishSpans:
    """PRODUCER spans for one batch the outbox relay sends: each message's span is the child
    of the `traceparent` it was staged with and replaces it, so the consumer's span becomes
    the child of the send. They end when the batch is acknowledged (or fails)."""

    def __init__(self, tracer: Tracer | None) -> None:
        self._tracer = tracer
        self._spans: list[Span] = []

    def traced(self, topic: str, key: str, event_type: str, headers: Headers) -> Headers:
        if self._tracer is None:
            return headers
        values = dict(headers)
        staged = values.get(TRACEPARENT, b"").decode("ascii", "replace")
        attributes: dict[str, str] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": key,
            "pipeline.event_type": event_type,
        }
        for header, attribute in (
            ("event_id", "messaging.message.id"),
            ("correlation_id", "messaging.message.conversation_id"),
        ):
            if header in values:
                attributes[attribute] = values[header].decode("utf-8", "replace")
        span = self._tracer.start_span(
            f"send {event_type}",
            context=_parent(staged),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )
        self._spans.append(span)
        own = _traceparent_of(span.get_span_context()).encode()
        return [(name, own if name == TRACEPARENT else value) for name, value in headers]

    def __enter__(self) -> PublishSpans:
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for span in self._spans:
            if error is not None:
                span.record_exception(error)
                span.set_status(StatusCode.ERROR, str(error))
            span.end()
        self._spans.clear()


def publish_spans() -> PublishSpans:
    return PublishSpans(_state.tracer)


UNTRACED_PATHS = frozenset({"/metrics", "/health"})  # scrapes and probes: noise in any trace


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry support makes each request's SERVER span (continuing the
    caller's `traceparent`, named after the route) on the provider `configure_tracing`
    installed; with tracing off it does nothing. Only the request span: the rest is elsewhere
    or too dear for the gateway's hot path."""
    return {
        "tracer_provider": _state.provider,
        # Off unless configure_tracing installed a provider: even no-op spans cost the
        # gateway a wrapper, attributes and a context switch per request.
        "tracing": _state.provider is not None,
        "operation_spans": False,  # a span per dependency and serialization, every request
        "metrics": False,  # Prometheus has them (kit.http_metrics)
        "logs": False,  # the JSON log lines are the logs
        "auto_configure": False,  # configure_tracing decides, once per process
        "exclude": lambda scope: scope.get("path") in UNTRACED_PATHS,
    }


class TraceRequests:
    """ASGI middleware: the request's trace id (and span id) in every log line it writes, and
    its place in the trace for what it emits (`current_traceparent`).

    It runs inside FastAPI's SERVER span when tracing is on (`fastapi_telemetry`). With
    tracing off the request still gets a traceparent of its own in the caller's trace (or a
    new one), so what it emits and logs joins that trace. A plain ASGI wrapper, like the
    metrics middleware: no task or stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        if _state.tracer is not None:
            span = trace.get_current_span()
            if span.get_span_context().is_valid:
                with _logged(span):
                    await self.app(scope, receive, send)
                return
        trace_id = trace_id_of(_header(scope, TRACEPARENT.encode())) or secrets.token_hex(16)
        token = _request_traceparent.set(new_traceparent(trace_id))
        try:
            with log_context(trace_id=trace_id):
                await self.app(scope, receive, send)
        finally:
            _request_traceparent.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None
