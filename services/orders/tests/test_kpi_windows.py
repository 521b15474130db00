"""The KPI windows: pure logic first, then the faust agent run without a broker."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from kit.avro_codec import SchemaStore
from kit.envelope import Envelope
from kit.settings import REPO_ROOT
from kit.testing.service_harness import event, order_placed
from orders.kpis.app import OrderKpis
from orders.kpis.metrics import KpiCollector
from orders.kpis.settings import KpisSettings
from orders.kpis.windows import (
    Contribution,
    Measure,
    MinuteKpis,
    OrderValue,
    Window,
    WindowedCell,
    accepts,
    contributions,
    last_closed_minute,
    summarize,
)

T0 = 1_800_000_000  # a whole minute
MINUTE = Window(T0, T0 + 60)
NEXT_MINUTE = Window(T0 + 60, T0 + 120)
HOUR = 3600.0


def cell(
    measure: Measure,
    amount: int,
    *,
    currency: str = "",
    partition: int = 0,
    window: Window = MINUTE,
) -> tuple[WindowedCell, int]:
    """A cell as faust keys it: its window ends 0.1 s before the next one starts."""
    return ((measure.value, currency, partition), (float(window.start), window.end - 0.1)), amount


# -- which minute is closed, which events are too late --------------------------------------


def test_the_last_closed_minute_is_the_latest_that_ended_at_least_the_grace_ago() -> None:
    assert last_closed_minute(T0 + 60 + 9.9, grace_s=10) == Window(T0 - 60, T0)
    assert last_closed_minute(T0 + 60 + 10, grace_s=10) == MINUTE
    assert last_closed_minute(T0 + 119, grace_s=10) == MINUTE


def test_a_quiet_minute_closes_too_and_shows_no_orders() -> None:
    busy_earlier = [cell(Measure.PLACED, 5, window=Window(T0 - 60, T0))]

    kpis = summarize(busy_earlier, last_closed_minute(T0 + 60 + 10, grace_s=10))

    assert kpis.window == MINUTE
    assert kpis.orders == {"placed": 0, "completed": 0, "cancelled": 0}


def test_a_late_event_counts_while_its_minute_is_kept_and_is_refused_after() -> None:
    an_hour_later = MINUTE.end + HOUR

    assert accepts(T0 + 30, now=an_hour_later - 1, retention_s=HOUR)
    assert not accepts(T0 + 30, now=an_hour_later, retention_s=HOUR)


def test_an_event_from_the_future_is_accepted_into_its_own_minute() -> None:
    assert accepts(T0 + 600, now=T0, retention_s=HOUR)


# -- what each event adds --------------------------------------------------------------------


def test_a_placed_order_counts_and_adds_its_value_in_its_currency() -> None:
    placed = order_placed("o-1").payload

    assert contributions("OrderPlaced", placed, None) == [
        Contribution(Measure.PLACED, "", 1),
        Contribution(Measure.PLACED_VALUE, "EUR", placed["total"]),
        Contribution(Measure.PLACED_IN_CURRENCY, "EUR", 1),
    ]


def test_a_completed_order_brings_the_revenue_it_was_placed_for() -> None:
    assert contributions("OrderCompleted", {}, OrderValue(4200, "USD")) == [
        Contribution(Measure.COMPLETED, "", 1),
        Contribution(Measure.REVENUE, "USD", 4200),
    ]


def test_a_completed_order_of_unknown_value_counts_without_revenue() -> None:
    assert contributions("OrderCompleted", {}, None) == [Contribution(Measure.COMPLETED, "", 1)]


def test_other_order_events_change_no_kpi() -> None:
    assert contributions("OrderReturned", {}, OrderValue(100, "EUR")) == []


# -- what the gauges show for a minute -------------------------------------------------------


def test_counts_add_up_over_partitions_and_leave_other_minutes_out() -> None:
    cells = [
        cell(Measure.PLACED, 2, partition=0),
        cell(Measure.PLACED, 3, partition=4),
        cell(Measure.COMPLETED, 1, partition=4),
        cell(Measure.CANCELLED, 1, partition=5),
        cell(Measure.PLACED, 100, partition=0, window=NEXT_MINUTE),
    ]

    assert summarize(cells, MINUTE).orders == {"placed": 5, "completed": 1, "cancelled": 1}


def test_revenue_is_per_currency_in_major_units_and_zero_for_a_known_currency() -> None:
    cells = [
        cell(Measure.REVENUE, 1999, currency="EUR", partition=1),
        cell(Measure.REVENUE, 1, currency="EUR", partition=2),
        # USD is known from an earlier minute: it shows 0, not a stale value or nothing.
        cell(Measure.REVENUE, 500, currency="USD", window=Window(T0 - 60, T0)),
    ]

    assert summarize(cells, MINUTE).revenue == {"EUR": 20.0, "USD": 0.0}


def test_the_average_order_value_is_per_currency_and_absent_without_orders() -> None:
    cells = [
        cell(Measure.PLACED_VALUE, 1000, currency="EUR", partition=0),
        cell(Measure.PLACED_VALUE, 3500, currency="EUR", partition=3),
        cell(Measure.PLACED_IN_CURRENCY, 1, currency="EUR", partition=0),
        cell(Measure.PLACED_IN_CURRENCY, 2, currency="EUR", partition=3),
        cell(Measure.PLACED_VALUE, 999, currency="GBP", window=NEXT_MINUTE),
        cell(Measure.PLACED_IN_CURRENCY, 1, currency="GBP", window=NEXT_MINUTE),
    ]

    assert summarize(cells, MINUTE).average_order_value == {"EUR": 15.0}


def test_the_gauges_carry_the_catalog_names_and_labels() -> None:
    registry = CollectorRegistry()
    snapshot = MinuteKpis(
        MINUTE,
        orders={"placed": 3, "completed": 2, "cancelled": 1},
        revenue={"EUR": 12.5},
        average_order_value={"EUR": 7.25},
    )
    registry.register(KpiCollector(lambda: snapshot))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("kpi_orders_per_minute", kind="placed") == 3
    assert value("kpi_orders_per_minute", kind="cancelled") == 1
    assert value("kpi_revenue_per_minute_amount", currency="EUR") == 12.5
    assert value("kpi_average_order_value_amount", currency="EUR") == 7.25
    assert value("kpi_window_end_timestamp_seconds") == MINUTE.end
    assert b"# TYPE kpi_orders_per_minute gauge" in generate_latest(registry)


def test_no_gauges_are_shown_while_there_is_no_trustworthy_snapshot() -> None:
    registry = CollectorRegistry()
    registry.register(KpiCollector(lambda: None))

    assert b"kpi_" not in generate_latest(registry)


# -- the faust agent, without a broker -------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(second: float) -> datetime:
    return datetime.fromtimestamp(second, UTC)


def placed(total: int, currency: str, second: float) -> Envelope:
    envelope = order_placed(str(uuid.uuid4()))
    payload = {**envelope.payload, "currency": currency, "total": total, "placed_at": at(second)}
    return replace(envelope, payload=payload, occurred_at=at(second))


def completed(order: Envelope, second: float) -> Envelope:
    envelope = event("OrderCompleted", order.key, "orders", completed_at=at(second))
    return replace(envelope, occurred_at=at(second))


@pytest.fixture
def schemas() -> SchemaStore:
    return SchemaStore.load(REPO_ROOT / "schemas")


@pytest.fixture
def clock() -> Clock:
    return Clock(NEXT_MINUTE.start + 30)


@pytest.fixture
def kpis(tmp_path: Path, schemas: SchemaStore, clock: Clock) -> OrderKpis:
    settings = KpisSettings(kpis_data_dir=tmp_path, kpis_window_grace_s=10)
    kpis = OrderKpis(settings, schemas, clock=clock, registry=CollectorRegistry())
    kpis.app.finalize()
    return kpis


async def deliver(
    kpis: OrderKpis, schemas: SchemaStore, *envelopes: Envelope, partition: int = 0
) -> None:
    async with kpis.agent.test_context() as agent:
        for envelope in envelopes:
            value = schemas.encode(envelope.event_type, envelope.payload)
            await agent.put(
                value, envelope.key.encode(), partition=partition, headers=envelope.headers()
            )


async def test_the_agent_windows_events_by_occurred_at_and_remembers_what_orders_cost(
    kpis: OrderKpis, schemas: SchemaStore
) -> None:
    earlier = placed(2500, "EUR", MINUTE.start - 5)
    await deliver(kpis, schemas, earlier, placed(1000, "EUR", MINUTE.start + 1), partition=1)
    await deliver(kpis, schemas, placed(2000, "EUR", MINUTE.start + 2), partition=4)
    await deliver(kpis, schemas, completed(earlier, MINUTE.start + 59), partition=1)
    # Placed in the minute still open: not shown yet.
    await deliver(kpis, schemas, placed(9900, "EUR", NEXT_MINUTE.start + 1), partition=2)

    snapshot = kpis.snapshot()

    assert snapshot.window == MINUTE
    assert snapshot.orders == {"placed": 2, "completed": 1, "cancelled": 0}
    assert snapshot.revenue == {"EUR": 25.0}
    assert snapshot.average_order_value == {"EUR": 15.0}
    assert earlier.key not in kpis.open_orders  # a completed order's value is forgotten


async def test_the_agent_drops_late_and_unreadable_events_and_carries_on(
    kpis: OrderKpis, schemas: SchemaStore, clock: Clock
) -> None:
    dropped_before = REGISTRY.get_sample_value("kpi_late_events_dropped_total") or 0
    too_old = placed(1000, "EUR", clock.now - 2 * HOUR)

    async with kpis.agent.test_context() as agent:
        await agent.put(b"not avro", b"o-x", headers=[("event_type", b"OrderPlaced")])
        await agent.put(b"\xc3\x01", b"o-y", headers=[("event_type", b"OrderCancelled")])
    await deliver(kpis, schemas, too_old, placed(1000, "EUR", MINUTE.start + 1))

    assert kpis.snapshot().orders["placed"] == 1
    assert REGISTRY.get_sample_value("kpi_late_events_dropped_total") == dropped_before + 1


async def test_minutes_restored_past_the_retention_are_forgotten(kpis: OrderKpis) -> None:
    # What a restore from the changelog puts in the store: faust sets no expiry on it.
    two_hours_ago = Window(T0 - 7200, T0 - 7140)
    old = cell(Measure.PLACED, 1, window=two_hours_ago)
    kept = cell(Measure.PLACED, 2)
    store = kpis.per_minute.table.data
    for key, amount in (old, kept):
        store[key] = amount

    await kpis.forget_expired_minutes()

    assert dict(store.items()) == dict([kept])
