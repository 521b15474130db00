"""An order placed with a storefront's `traceparent` can be followed by that trace id: it is
in the JSON log lines of all five services, and in the spans a service exports over OTLP."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from kit.testing.orders import order_body
from kit.testing.otlp import OtlpReceiver, otlp_receiver
from kit.testing.pipeline import SERVICES, Pipeline, wait_until
from tests.integration.helpers import PipelineClient


def place_traced(client: PipelineClient, customer: str) -> tuple[str, str, str]:
    """Places an order as part of a new storefront trace: (order id, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    response = client.http.post(
        "/v1/orders",
        json=order_body([("T-TEE", 1)], customer=customer),
        headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
    )
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id, trace_id, span_id


def logged_lines(pipeline: Pipeline, service: str, trace_id: str) -> list[dict[str, Any]]:
    """The service's complete log lines that mention `trace_id`, parsed as JSON."""
    text = pipeline.log_path(service).read_text(errors="replace")
    complete = text[: text.rfind("\n") + 1]  # the service may be writing the last one now
    return [json.loads(line) for line in complete.splitlines() if trace_id in line]


def test_one_orders_trace_id_is_in_the_log_lines_of_all_five_services(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    order_id, trace_id, _ = place_traced(client, "traced-logs")
    client.wait_status(order_id, "COMPLETED")

    def in_every_log() -> dict[str, list[dict[str, Any]]] | None:
        found = {service: logged_lines(pipeline, service, trace_id) for service in SERVICES}
        return found if all(found.values()) else None

    logged = wait_until(in_every_log, 30, f"trace {trace_id} in the log of every service")
    for service, lines in logged.items():
        for line in lines:
            assert line["service"] == service, line
            assert line["trace_id"] == trace_id, line
            assert line["correlation_id"] == order_id, line
        # At least one business step, logged while handling one of the order's messages.
        assert any(line["level"] == "INFO" and "event_id" in line for line in lines), service


def restart_all(pipeline: Pipeline, env: dict[str, str]) -> None:
    """All five stopped, then started together: one wait for health for all of them."""
    pipeline.stop(*SERVICES)
    pipeline.overrides.update({service: dict(env) for service in SERVICES})
    pipeline.start(*SERVICES)


@contextmanager
def all_exporting_to(pipeline: Pipeline, receiver: OtlpReceiver) -> Iterator[None]:
    """Every service exports its spans to `receiver` (in batches every 0.1 s) until the end
    of the block, then runs with its defaults again: tracing off."""
    restart_all(
        pipeline,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    try:
        yield
    finally:
        restart_all(pipeline, {})


# What each service does for one order that completes, as spans: (service, span name).
HAPPY_PATH_SPANS = {
    ("orders", "POST /v1/orders"),
    ("orders", "send OrderPlaced"),
    ("inventory", "process OrderPlaced"),
    ("inventory", "send StockReserved"),
    ("payments", "process OrderPlaced"),
    ("payments", "process StockReserved"),
    ("payments", "send PaymentCaptured"),
    ("fulfillment", "process OrderPlaced"),
    ("fulfillment", "process PaymentCaptured"),
    ("fulfillment", "send ShipmentCreated"),
    ("fulfillment", "send ShipmentDispatched"),
    ("fulfillment", "send ShipmentDelivered"),
    ("inventory", "process ShipmentDispatched"),
    ("notifications", "process OrderPlaced"),
    ("notifications", "process ShipmentDispatched"),
    ("notifications", "send NotificationSent"),
    ("orders", "process StockReserved"),
    ("orders", "process PaymentCaptured"),
    ("orders", "process ShipmentCreated"),
    ("orders", "process ShipmentDispatched"),
    ("orders", "process ShipmentDelivered"),
    ("orders", "send OrderCompleted"),
}
# The carrier's clock, not a message, moves a shipment on: those sends start a new branch of
# the order's trace (same trace id, a parent span that was never exported).
TIMER_SPANS = {"send ShipmentDispatched", "send ShipmentDelivered"}


def test_every_service_exports_the_orders_spans_as_one_tree_over_otlp(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    """Restarting the five services twice costs a few seconds a backend; spans of one real
    pipeline are the only proof that the header, the SDK and the exporter fit together."""
    with otlp_receiver() as receiver, all_exporting_to(pipeline, receiver):
        order_id, trace_id, storefront_span_id = place_traced(client, "traced-spans")
        client.wait_status(order_id, "COMPLETED")

        def tree_complete() -> list[tuple[str, Span]] | None:
            spans = receiver.spans(trace_id)
            ids = {span.span_id for _, span in spans}
            complete = {(service, span.name) for service, span in spans} >= HAPPY_PATH_SPANS
            orphans = [
                span
                for _, span in spans
                if span.parent_span_id not in ids
                and span.kind != Span.SPAN_KIND_SERVER
                and span.name not in TIMER_SPANS
            ]
            return spans if complete and not orphans else None

        spans = wait_until(tree_complete, 30, f"every span of trace {trace_id}")

    by_id = {span.span_id: (service, span) for service, span in spans}
    [gateway] = [span for _, span in spans if span.kind == Span.SPAN_KIND_SERVER]
    assert gateway.parent_span_id.hex() == storefront_span_id
    for service, span in spans:
        if span.kind == Span.SPAN_KIND_CONSUMER:  # handling a message: its send is the parent
            _, send = by_id[span.parent_span_id]
            assert send.kind == Span.SPAN_KIND_PRODUCER, span.name
            assert send.name == span.name.replace("process ", "send ", 1)
            assert {a.key: a.value.string_value for a in span.attributes}["order.id"] == order_id
        elif span.kind == Span.SPAN_KIND_PRODUCER and span.name not in TIMER_SPANS:
            # a send belongs to the request or the message handling that emitted it
            cause_service, cause = by_id[span.parent_span_id]
            assert cause_service == service, span.name
            assert cause.kind in (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CONSUMER), span.name
