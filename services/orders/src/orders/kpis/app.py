"""The faust app: one agent over the order events, two tables, `/metrics` and `/health`.

Built by `OrderKpis(settings, schemas)`, never at import time. The tables live in memory
(`memory://`); each has a changelog topic (`<app id>-<table>-changelog`, which faust creates)
from which a restarted process restores it before the web server answers.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import faust
from faust import web
from faust.tables.manager import TableManager
from faust.tables.wrappers import WindowWrapper
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from kit.avro_codec import DecodeError, SchemaStore
from kit.envelope import HEADER_EVENT_TYPE, HEADER_OCCURRED_AT
from orders.kpis import metrics
from orders.kpis.settings import KpisSettings
from orders.kpis.windows import (
    WINDOW_SECONDS,
    MinuteKpis,
    OrderValue,
    accepts,
    contributions,
    last_closed_minute,
    order_value,
    summarize,
)

log = logging.getLogger(__name__)

# Types that change a KPI; every other event on the topic is skipped without decoding.
COUNTED_TYPES = frozenset({"OrderPlaced", "OrderCompleted", "OrderCancelled"})
# Orders whose completion can still bring revenue; the rest left the table.
TERMINAL_TYPES = frozenset({"OrderCompleted", "OrderCancelled"})


class UnreadableEventError(ValueError):
    """An order event the KPIs cannot use: it is logged and left out, never retried."""


def occurred_at(event: EventT[bytes] | None) -> float:
    """Event time from the envelope's header, so windows follow the order, not the relay."""
    if event is None:
        raise RuntimeError("a window's time is only known while an event is handled")
    raw = event.headers.get(HEADER_OCCURRED_AT)
    if raw is None:
        raise UnreadableEventError(f"no {HEADER_OCCURRED_AT!r} header")
    try:
        return datetime.fromisoformat(raw.decode()).timestamp()
    except (UnicodeDecodeError, ValueError) as error:
        raise UnreadableEventError(f"bad {HEADER_OCCURRED_AT!r} header: {raw!r}") from error


class OrderKpis:
    def __init__(
        self,
        settings: KpisSettings,
        schemas: SchemaStore,
        *,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.settings = settings
        self.schemas = schemas
        self.clock = clock
        self.retention_s = settings.kpis_window_retention.total_seconds()
        self.app = faust.App(
            settings.kpis_app_id,
            broker=settings.broker_urls,
            store="memory://",
            autodiscover=False,
            datadir=str(settings.kpis_data_dir),
            # Changelog topics are co-partitioned with the source topic (a table's partition
            # is the event's) and replicated like the pipeline's own topics.
            topic_partitions=settings.kpis_topic_partitions,
            topic_replication_factor=settings.kpis_replication_factor,
            consumer_auto_offset_reset="earliest",
            web_enabled=True,
            web_bind=settings.kpis_http_host,
            web_host=settings.kpis_http_host,
            web_port=settings.kpis_http_port,
            # Only our two pages: faust's router and table browser would publish state.
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
        )
        source = self.app.topic(
            settings.kpis_source_topic, key_serializer="raw", value_serializer="raw"
        )
        windowed = self.app.Table(
            "per-minute", default=int, help="KPI sums per minute and partition"
        ).tumbling(WINDOW_SECONDS, expires=settings.kpis_window_retention)
        assert isinstance(windowed, WindowWrapper)  # the declared type lacks relative_to()
        self.per_minute = windowed.relative_to(occurred_at)
        # OrderCompleted does not carry the amount: what each open order was placed for.
        self.open_orders = self.app.Table("open-order-values", help="[total, currency]")
        self.agent = self.app.agent(source, name="tally")(self._tally_stream)
        self.app.timer(interval=WINDOW_SECONDS)(self.forget_expired_minutes)
        registry.register(metrics.KpiCollector(self._shown))
        _add_pages(self.app, registry, self.restored)

    def snapshot(self) -> MinuteKpis:
        window = last_closed_minute(self.clock(), self.settings.kpis_window_grace_s)
        return summarize(self.per_minute.table.data.items(), window)

    def restored(self) -> bool:
        """Whether the tables hold everything their changelogs had.

        faust serves HTTP while it restores them (on start and after every rebalance, since
        `memory://` keeps no offsets): until then the sums are partial.
        """
        tables = cast(TableManager, self.app.tables)  # the declared type lacks .recovery
        return tables.recovery.completed.is_set() and not self.app.in_recovery

    def _shown(self) -> MinuteKpis | None:
        # No gauges rather than too-low ones: a gap in a graph, not a dip.
        return self.snapshot() if self.restored() else None

    async def forget_expired_minutes(self) -> None:
        """Drops minutes older than the retention from memory.

        faust expires the minutes this process wrote, but not those it restored from the
        changelog; the changelog forgets them by itself (its retention is the same).
        """
        store = self.per_minute.table.data
        now = self.clock()
        for key in [key for key in store if not accepts(key[1][0], now, self.retention_s)]:
            del store[key]

    async def _tally_stream(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                self.tally(event)
            except UnreadableEventError as error:
                log.warning(
                    "order event left out of the KPIs: %s",
                    error,
                    extra={"partition": event.message.partition, "offset": event.message.offset},
                )

    def tally(self, event: EventT[bytes]) -> None:
        """Adds one order event to its minute (must run inside the agent: faust tables
        write their changelog to the partition of the event being handled)."""
        event_type = _header(event, HEADER_EVENT_TYPE)
        if event_type not in COUNTED_TYPES:
            return
        payload = self._decode(event, event_type)
        event_time = occurred_at(event)
        order_id = (event.key or b"").decode(errors="replace")
        placed = self._remember(order_id, event_type, payload)
        if not accepts(event_time, self.clock(), self.retention_s):
            metrics.late_events_dropped.inc()
            return
        partition = event.message.partition
        for contribution in contributions(event_type, payload, placed):
            cell = (contribution.measure.value, contribution.currency, partition)
            self.per_minute[cell].apply(operator.add, contribution.amount, event)

    def _remember(
        self, order_id: str, event_type: str, payload: dict[str, Any]
    ) -> OrderValue | None:
        """Keeps an open order's value until the event that ends it, which gets it back."""
        if (value := order_value(event_type, payload)) is not None:
            self.open_orders[order_id] = [value.total, value.currency]
            return value
        if event_type in TERMINAL_TYPES and order_id in self.open_orders:
            total, currency = self.open_orders.pop(order_id)
            return OrderValue(total=total, currency=currency)
        return None

    def _decode(self, event: EventT[bytes], event_type: str) -> dict[str, Any]:
        if not isinstance(event.value, bytes):
            raise UnreadableEventError(f"{event_type} without a value")
        try:
            decoded_type, payload = self.schemas.decode(event.value)
        except DecodeError as error:
            raise UnreadableEventError(str(error)) from error
        if decoded_type != event_type:
            raise UnreadableEventError(f"header says {event_type}, the bytes {decoded_type}")
        return payload


def _add_pages(app: faust.App, registry: CollectorRegistry, restored: Callable[[], bool]) -> None:
    @app.page("/metrics")
    async def metrics_page(view: web.View, request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return view.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health_page(view: web.View, request: web.Request) -> web.Response:
        if restored():
            return view.json({"status": "ok"})
        return view.json({"status": "restoring tables"}, status=503)


def _header(event: EventT[bytes], name: str) -> str | None:
    raw = event.headers.get(name)
    return raw.decode(errors="replace") if raw is not None else None
