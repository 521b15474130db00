"""Publishes committed outbox rows to Kafka, in order, a whole batch in flight at once.

Rows are deleted only after the broker acknowledged every message of the batch (acks=all,
idempotent producer). A crash in between publishes them again on restart; consumers'
inboxes drop the duplicates, so delivery is at-least-once and processing effectively once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, Row, Table, delete, func, select

from kit import metrics, tracing
from kit.retry import retry_forever

log = logging.getLogger(__name__)


class RelayWakeup:
    """Lets a commit in any thread wake the relay at once instead of at its next poll."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, at_most_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), at_most_s)
        self._event.clear()


def create_producer(bootstrap_servers: str, linger_ms: int, client_id: str) -> AIOKafkaProducer:
    # acks=all + idempotence: a retried send never duplicates or reorders within a partition.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
        retry_backoff_ms=200,
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        engine: Engine,
        read_engine: Engine,
        write_lock: AbstractContextManager[Any],
        outbox: Table,
        producer: AIOKafkaProducer,
        wakeup: RelayWakeup,
        max_batch: int = 1000,
        poll_interval_s: float = 0.5,
    ) -> None:
        self._engine = engine
        self._read_engine = read_engine
        self._write_lock = write_lock
        self._outbox = outbox
        self._producer = producer
        self._wakeup = wakeup
        self._max_batch = max_batch
        self._poll_interval_s = poll_interval_s
        self.published = 0

    async def run(self) -> None:
        await retry_forever(self._producer.start, "producer start")
        while True:
            if not await self.publish_pending():
                await self._wakeup.wait(self._poll_interval_s)

    async def publish_pending(self) -> int:
        """Publishes one batch; returns how many rows it published (0 when idle or failing)."""
        try:
            rows = await asyncio.to_thread(self._fetch)
            await self._report_backlog(rows)
            if not rows:
                return 0
            started = time.perf_counter()
            await self._send_all(rows)
            metrics.relay_publish_seconds.observe(time.perf_counter() - started)
            await asyncio.to_thread(self._delete, [row.id for row in rows])
        except Exception as error:
            # Broker or database unavailable: the rows stay in the outbox and go out later
            # (a delete that failed after the send only means duplicates for the inboxes).
            metrics.relay_failures.inc()
            log.warning("outbox relay failed: %s; will retry", error)
            await asyncio.sleep(1.0)
            return 0
        for row in rows:
            metrics.messages_published.labels(row.topic, row.event_type).inc()
        self.published += len(rows)
        return len(rows)

    async def _report_backlog(self, rows: Sequence[Row[Any]]) -> None:
        """Backlog gauges from the fetched batch; a COUNT only when the batch is full."""
        oldest = rows[0].created_at if rows else None
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        metrics.outbox_oldest_age.set(max(age, 0.0))
        backlog = len(rows)
        if backlog >= self._max_batch:
            backlog = await asyncio.to_thread(self._count)
        metrics.outbox_backlog.set(backlog)

    async def _send_all(self, rows: Sequence[Row[Any]]) -> None:
        # send() only enqueues; awaiting the futures together keeps the whole batch in flight.
        # With tracing on, each message gets a PRODUCER span that its traceparent then names.
        with tracing.publish_spans() as spans:
            deliveries = [
                await self._producer.send(
                    row.topic,
                    value=row.value,
                    key=row.message_key.encode(),
                    headers=spans.traced(
                        row.topic,
                        row.message_key,
                        row.event_type,
                        [(name, value.encode()) for name, value in row.headers],
                    ),
                )
                for row in rows
            ]
            await asyncio.gather(*deliveries)

    def _fetch(self) -> Sequence[Row[Any]]:
        query = select(self._outbox).order_by(self._outbox.c.id).limit(self._max_batch)
        with self._read_engine.connect() as connection:
            return connection.execute(query).all()

    def _count(self) -> int:
        with self._read_engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(self._outbox)).scalar_one()

    def _delete(self, ids: list[int]) -> None:
        with self._write_lock, self._engine.begin() as connection:
            connection.execute(delete(self._outbox).where(self._outbox.c.id.in_(ids)))
