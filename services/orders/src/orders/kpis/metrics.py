"""The KPI gauges (catalog: docs/METRICS.md, "Stream KPIs"), read from the tables per scrape.

A collector rather than gauges set on a timer: every scrape sees the tables as they are,
and a currency that is gone from the kept windows is gone from the output, not frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orders.kpis.windows import MinuteKpis

late_events_dropped = Counter(
    "kpi_late_events_dropped_total",
    "Order events whose minute was older than KPIS_WINDOW_RETENTION, left out of every KPI",
)


class KpiCollector(Collector):
    def __init__(self, snapshot: Callable[[], MinuteKpis | None]) -> None:
        """`snapshot` returns None while there is nothing trustworthy to show."""
        self._snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        # Lets the registry check names without reading tables that are not running yet.
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        kpis = self._snapshot()
        if kpis is None:
            return iter(())
        orders, revenue, average, window_end = self._families()
        for kind, count in kpis.orders.items():
            orders.add_metric([kind], count)
        for currency, amount in kpis.revenue.items():
            revenue.add_metric([currency], amount)
        for currency, amount in kpis.average_order_value.items():
            average.add_metric([currency], amount)
        window_end.add_metric([], kpis.window.end)
        return iter((orders, revenue, average, window_end))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "kpi_orders_per_minute",
                "Orders placed, completed or cancelled in the last closed minute (event time)",
                labels=["kind"],
            ),
            GaugeMetricFamily(
                "kpi_revenue_per_minute_amount",
                "Value of the orders completed in the last closed minute",
                labels=["currency"],
            ),
            GaugeMetricFamily(
                "kpi_average_order_value_amount",
                "Average value of the orders placed in the last closed minute",
                labels=["currency"],
            ),
            GaugeMetricFamily(
                "kpi_window_end_timestamp_seconds",
                "End of the last closed minute the KPI gauges show (Unix time)",
            ),
        )
