"""One-minute tumbling windows over order events, by event time: pure logic, no faust.

What each event adds to its minute (`contributions`), which minute is the last closed one
(`last_closed_minute`), whether an event is too late to count (`accepts`), and what the
gauges show for a minute (`summarize`). The faust app only stores the sums and calls these.

Every cell is keyed by the Kafka partition the event came from: a partition's events are
the only writers of its cells, so a table restored from its changelog (one partition after
another, in no particular order) ends with exactly the sums that were written; the gauges
add the partitions up.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kit.metrics import major_units

WINDOW_SECONDS = 60

ORDER_KINDS = ("placed", "completed", "cancelled")


class Measure(StrEnum):
    PLACED = "placed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    # By currency, in minor units: revenue is what completed orders were worth.
    REVENUE = "revenue"
    # By currency: the numerator and denominator of the average order value.
    PLACED_VALUE = "placed_value"
    PLACED_IN_CURRENCY = "placed_in_currency"


# (measure, currency or "", source partition)
Cell = tuple[str, str, int]
# How faust keys a windowed table: (cell, (window start, window end)).
WindowedCell = tuple[Cell, tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) in Unix seconds, on whole minutes."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class OrderValue:
    """What an order was placed for; OrderCompleted does not repeat it."""

    total: int
    currency: str


@dataclass(frozen=True, slots=True)
class Contribution:
    measure: Measure
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class MinuteKpis:
    """What the gauges show: money in major units."""

    window: Window
    orders: Mapping[str, int]
    revenue: Mapping[str, float]
    average_order_value: Mapping[str, float]


def order_value(event_type: str, payload: Mapping[str, Any]) -> OrderValue | None:
    if event_type != "OrderPlaced":
        return None
    return OrderValue(total=int(payload["total"]), currency=str(payload["currency"]))


def contributions(
    event_type: str, payload: Mapping[str, Any], placed: OrderValue | None
) -> list[Contribution]:
    """What one event adds to its minute; `placed` is its order's value, if known."""
    if event_type == "OrderPlaced":
        value = order_value(event_type, payload)
        assert value is not None
        return [
            Contribution(Measure.PLACED, "", 1),
            Contribution(Measure.PLACED_VALUE, value.currency, value.total),
            Contribution(Measure.PLACED_IN_CURRENCY, value.currency, 1),
        ]
    if event_type == "OrderCompleted":
        completed = [Contribution(Measure.COMPLETED, "", 1)]
        if placed is not None:
            completed.append(Contribution(Measure.REVENUE, placed.currency, placed.total))
        return completed
    if event_type == "OrderCancelled":
        return [Contribution(Measure.CANCELLED, "", 1)]
    return []


def window_of(timestamp: float) -> Window:
    start = math.floor(timestamp / WINDOW_SECONDS) * WINDOW_SECONDS
    return Window(start, start + WINDOW_SECONDS)


def last_closed_minute(now: float, grace_s: float) -> Window:
    """The latest minute that ended at least `grace_s` ago.

    Closed by the wall clock, not by the newest event: a quiet minute closes too (and shows
    zero orders) instead of the gauges freezing on the last busy one.
    """
    return window_of(now - grace_s - WINDOW_SECONDS)


def accepts(event_time: float, now: float, retention_s: float) -> bool:
    """Whether an event's minute is still kept: older ones are dropped, not counted."""
    return window_of(event_time).end > now - retention_s


def summarize(cells: Iterable[tuple[WindowedCell, int]], window: Window) -> MinuteKpis:
    """The gauges for `window`, from every cell of every kept window.

    Revenue is shown for every currency seen in any kept window (zero when nothing was
    completed in it); the average order value only where orders were placed in the minute.
    """
    sums: defaultdict[tuple[str, str], int] = defaultdict(int)
    currencies: set[str] = set()
    for ((measure, currency, _partition), (start, _end)), amount in cells:
        if currency:
            currencies.add(currency)
        if round(start) == window.start:
            sums[(measure, currency)] += amount
    orders = {kind: sums[(kind, "")] for kind in ORDER_KINDS}
    revenue = {c: major_units(sums[(Measure.REVENUE, c)]) for c in sorted(currencies)}
    average_order_value = {
        c: major_units(sums[(Measure.PLACED_VALUE, c)]) / count
        for c in sorted(currencies)
        if (count := sums[(Measure.PLACED_IN_CURRENCY, c)])
    }
    return MinuteKpis(window, orders, revenue, average_order_value)
