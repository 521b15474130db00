"""The KPI process (`python -m orders.kpis`) windows real order events from a real broker.

The events go to a topic of this test's own, under a faust app id of its own, so neither
the pipeline's orders nor an earlier run land in the minutes asserted here. They are dated
in three consecutive minutes with different contents: the first is the last closed minute
when the test starts, the second becomes it a minute later, the third is still open. The
gauges must show exactly one of the first two — so the test holds whenever the minute
turns — and never the third.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from prometheus_client.parser import text_string_to_metric_families

from kit.avro_codec import SchemaStore
from kit.envelope import Envelope
from kit.settings import REPO_ROOT
from kit.testing.pipeline import wait_until
from kit.testing.service_harness import event, order_placed
from orders.kpis.windows import Window, last_closed_minute
from tests.integration.kpi_process import KpiProcess as BaseKpiProcess

GRACE_S = 1.0
PARTITIONS = 6


@dataclass(frozen=True)
class Gauges:
    window_end: int
    orders: dict[str, float]
    revenue: dict[str, float]
    average_order_value: dict[str, float]
    late_dropped: float


def at(window: Window, second: int) -> datetime:
    return datetime.fromtimestamp(window.start + second, UTC)


def placed(total: int, currency: str, when: datetime) -> Envelope:
    envelope = order_placed(str(uuid.uuid4()))
    line = {"sku": "T-MUG", "name": "Mug", "quantity": 1, "unit_price": total}
    payload = {
        **envelope.payload,
        "lines": [line],
        "currency": currency,
        "subtotal": total,
        "total": total,
        "placed_at": when,
    }
    return replace(envelope, payload=payload, occurred_at=when)


def completed(order: Envelope, when: datetime) -> Envelope:
    envelope = event("OrderCompleted", order.key, "orders", completed_at=when)
    return replace(envelope, occurred_at=when)


def cancelled(order: Envelope, when: datetime) -> Envelope:
    envelope = event(
        "OrderCancelled", order.key, "orders", reason="declined", detail="test", cancelled_at=when
    )
    return replace(envelope, occurred_at=when)


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()


async def delete_every_record(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # -1: up to each partition's high watermark.
        everything = {TopicPartition(topic, p): RecordsToDelete(-1) for p in range(PARTITIONS)}
        await admin.delete_records(everything)
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    schemas = SchemaStore.load(REPO_ROOT / "schemas")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic,
                schemas.encode(envelope.event_type, envelope.payload),
                key=envelope.key.encode(),
                headers=envelope.headers(),
            )
        # A poison message: skipped with a warning, never counted, never stops the agent.
        await producer.send_and_wait(
            topic, b"not avro", key=b"poison", headers=[("event_type", b"OrderPlaced")]
        )
    finally:
        await producer.stop()


class KpiProcess(BaseKpiProcess):
    def __init__(self, bootstrap: str, topic: str, work_dir: Path) -> None:
        super().__init__(bootstrap, topic, work_dir, partitions=PARTITIONS, grace_s=GRACE_S)

    def gauges(self) -> Gauges:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        samples: dict[str, dict[str, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                label = next(iter(sample.labels.values()), "")
                samples.setdefault(sample.name, {})[label] = sample.value
        return Gauges(
            window_end=int(samples["kpi_window_end_timestamp_seconds"][""]),
            orders=samples.get("kpi_orders_per_minute", {}),
            revenue=samples.get("kpi_revenue_per_minute_amount", {}),
            average_order_value=samples.get("kpi_average_order_value_amount", {}),
            late_dropped=samples["kpi_late_events_dropped_total"][""],
        )


@pytest.fixture
def kpi_process(kafka_bootstrap: str, tmp_path: Path) -> Iterator[KpiProcess]:
    process = KpiProcess(kafka_bootstrap, f"kpis-test-{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        yield process
    finally:
        process.stop()


def expected_gauges(first: Window) -> dict[int, Gauges]:
    second = Window(first.end, first.end + 60)
    return {
        first.end: Gauges(
            window_end=first.end,
            orders={"placed": 4, "completed": 3, "cancelled": 1},
            # GBP is only seen in the next minute: a known currency shows zero revenue.
            revenue={"EUR": 40.0, "USD": 10.0, "GBP": 0.0},
            average_order_value={"EUR": 25.0, "USD": 19.99},
            late_dropped=0,
        ),
        second.end: Gauges(
            window_end=second.end,
            orders={"placed": 1, "completed": 1, "cancelled": 2},
            revenue={"EUR": 10.0, "USD": 0.0, "GBP": 0.0},
            average_order_value={"GBP": 5.0},
            late_dropped=0,
        ),
    }


def events_around(first: Window) -> list[Envelope]:
    before = Window(first.start - 60, first.start)
    second = Window(first.end, first.end + 60)
    still_open = Window(second.end, second.end + 60)
    # Placed the minute before: their completion is revenue of the first minute.
    eur_15, eur_25, usd_10 = (
        placed(1500, "EUR", at(before, 10)),
        placed(2500, "EUR", at(before, 20)),
        placed(1000, "USD", at(before, 30)),
    )
    # The first minute: EUR average (10 + 20 + 45) / 3 = 25, USD 19.99.
    eur_10, eur_20, eur_45, usd_1999 = (
        placed(1000, "EUR", at(first, 1)),
        placed(2000, "EUR", at(first, 2)),
        placed(4500, "EUR", at(first, 3)),
        placed(1999, "USD", at(first, 4)),
    )
    return [
        # Two hours old: that minute is no longer kept (KPIS_WINDOW_RETENTION, 1 h).
        placed(9900, "EUR", datetime.fromtimestamp(time.time() - 7200, UTC)),
        eur_15,
        eur_25,
        usd_10,
        eur_10,
        eur_20,
        eur_45,
        usd_1999,
        completed(eur_15, at(first, 30)),
        completed(eur_25, at(first, 40)),
        completed(usd_10, at(first, 50)),
        cancelled(placed(700, "EUR", at(before, 40)), at(first, 59)),
        # The second minute.
        placed(500, "GBP", at(second, 5)),
        completed(eur_10, at(second, 10)),
        cancelled(eur_20, at(second, 20)),
        cancelled(usd_1999, at(second, 30)),
        # Still open while either of the others is the last closed minute: never shown.
        *(placed(100_000, "EUR", at(still_open, 1)) for _ in range(5)),
    ]


def seconds_into_the_minute() -> float:
    """How far the clock is into the minute the KPI process sees (it closes by `GRACE_S`)."""
    return (time.time() - GRACE_S) % 60


def wait_for_one_of(
    process: KpiProcess, expected: dict[int, Gauges], *, late_dropped: int, what: str
) -> None:
    try:
        wait_until(lambda: shows_one_of(process, expected, late_dropped=late_dropped), 60, what)
    except TimeoutError:
        shown = process.gauges()
        raise AssertionError(f"{what}: shows {shown}, expected one of {expected}") from None


def shows_one_of(
    process: KpiProcess, expected: dict[int, Gauges], *, late_dropped: int
) -> Gauges | None:
    gauges = process.gauges()
    if gauges.window_end > max(expected):
        raise AssertionError(f"the minute turned twice before the KPIs were in: {gauges}")
    wanted = expected.get(gauges.window_end)
    if wanted is None or replace(wanted, late_dropped=late_dropped) != gauges:
        return None
    return gauges


async def test_kpis_show_the_last_closed_minute_of_the_order_events(
    kafka_bootstrap: str, kpi_process: KpiProcess
) -> None:
    topic = kpi_process.env["KPIS_SOURCE_TOPIC"]
    # The test may see the minute turn once, not twice: starting early in a minute gives it
    # at least 100 s, whatever the machine's speed, instead of anything from 60 to 120.
    wait_until(lambda: seconds_into_the_minute() < 20, 60, "the start of a minute", 0.5)
    first = last_closed_minute(time.time(), GRACE_S)
    expected = expected_gauges(first)
    await create_topic(kafka_bootstrap, topic)
    await publish(kafka_bootstrap, topic, events_around(first))

    kpi_process.start()
    wait_for_one_of(
        kpi_process, expected, late_dropped=1, what="the KPIs of the last closed minute"
    )

    # memory:// tables start empty, and the events are gone: a restarted process can only
    # show the same sums by restoring its tables from their changelog topics — and it says
    # it is healthy only once it has, so the first scrape after that is already right.
    kpi_process.stop()
    await delete_every_record(kafka_bootstrap, topic)
    kpi_process.start()
    assert shows_one_of(kpi_process, expected, late_dropped=0), kpi_process.gauges()
