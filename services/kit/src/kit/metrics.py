"""Prometheus metrics of the plumbing; services add their own business metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram


def major_units(minor: int) -> float:
    """Money in metrics is in the currency's major unit (euros, not cents): every currency
    the catalog prices in has two decimals."""
    return minor / 100


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

messages_consumed = Counter(
    "pipeline_messages_consumed_total",
    "Messages read from Kafka, by outcome: ok, duplicate, skipped, dead_lettered or parked",
    ["topic", "event_type", "outcome"],
)
handler_seconds = Histogram(
    "pipeline_handler_duration_seconds",
    "Time one handler took for one message (inside the batch's transaction)",
    ["event_type"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
handler_retries = Counter(
    "pipeline_handler_retries_total",
    "Handler attempts that raised and were retried",
    ["event_type"],
)
isolated_batches = Counter(
    "pipeline_consumer_isolated_batches_total",
    "Batches re-run with one savepoint per message because a handler failed on the fast path",
)
batch_seconds = Histogram(
    "pipeline_consumer_batch_seconds",
    "Time to handle one consumed batch in one database transaction",
    buckets=LATENCY_BUCKETS,
)
batch_size = Histogram(
    "pipeline_consumer_batch_size",
    "Messages per consumed batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
consumer_lag = Gauge(
    "pipeline_consumer_lag",
    "Messages behind the partition's high watermark after the last commit",
    ["topic", "partition"],
)
messages_published = Counter(
    "pipeline_messages_published_total",
    "Messages the outbox relay published, by topic and event type",
    ["topic", "event_type"],
)
relay_publish_seconds = Histogram(
    "pipeline_relay_publish_seconds",
    "Time from sending an outbox batch to every broker acknowledgement",
    buckets=LATENCY_BUCKETS,
)
outbox_backlog = Gauge("pipeline_outbox_backlog_rows", "Outbox rows not yet published")
outbox_oldest_age = Gauge(
    "pipeline_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row when the relay last looked (0 when empty)",
)
relay_failures = Counter(
    "pipeline_relay_failures_total", "Outbox batches that failed to publish and will be retried"
)

http_requests = Counter(
    "pipeline_http_requests_total",
    "HTTP requests answered, by route template, method and status code",
    ["route", "method", "status"],
)
http_request_seconds = Histogram(
    "pipeline_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
dlq_messages = Gauge(
    "pipeline_dlq_messages",
    "Messages held in a dead-letter topic (end minus start offsets over its partitions)",
    ["topic"],
)
parked_messages = Gauge(
    "pipeline_parked_messages",
    "Messages set aside because an earlier message with their key was dead-lettered",
)
dead_letters_open = Gauge(
    "pipeline_dead_letters_open",
    "Dead letters of this service that still block their key (not redriven or purged)",
)
