"""Batch consumption: one database transaction per batch, offsets committed after it.

`BatchProcessor` is the synchronous heart (decode, deduplicate, dispatch, dead-letter) and
knows nothing of Kafka's client; `KafkaBatchConsumer` feeds it batches from `getmany` and
commits the offsets only once the batch's transaction has committed. A crash in between
redelivers the batch, and the inbox makes that harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy.exc import DBAPIError, IntegrityError

from kit import metrics, tracing
from kit.avro_codec import DecodeError, SchemaStore
from kit.envelope import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    Envelope,
    MissingHeaderError,
    envelope_from_headers,
    header_map,
)
from kit.logs import log_context
from kit.retry import retry_forever
from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, UnitOfWork], None]


class ConsumedRecord(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class Subscription:
    """What a service consumes: its topics and a handler per event type it cares about."""

    topics: tuple[str, ...]
    handlers: Mapping[str, Handler]
    # Loads what a whole batch's handlers will need in one query (say, every order the
    # batch mentions), so each handler finds it in the session instead of querying.
    prefetch: Callable[[Sequence[Envelope], UnitOfWork], None] | None = None


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass
class BatchOutcome:
    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    durations: list[tuple[str, float]] = field(default_factory=list)

    # The `outcome` label of pipeline_messages_consumed_total → the attribute counting it.
    _TALLIES = {
        "ok": "handled",
        "duplicate": "duplicates",
        "skipped": "skipped",
        "dead_lettered": "dead_lettered",
    }

    def count(self, record: ConsumedRecord, event_type: str, outcome: str) -> None:
        tally = self._TALLIES[outcome]
        setattr(self, tally, getattr(self, tally) + 1)
        key = (record.topic, event_type, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def observe_duration(self, event_type: str, seconds: float) -> None:
        self.durations.append((event_type, seconds))


class BatchProcessor:
    def __init__(
        self,
        subscription: Subscription,
        schemas: SchemaStore,
        unit_of_work: Callable[[], UnitOfWork],
        group_id: str,
        max_attempts: int = 3,
    ) -> None:
        self._handlers = subscription.handlers
        self._prefetch = subscription.prefetch
        self._schemas = schemas
        self._unit_of_work = unit_of_work
        self._group_id = group_id
        self._max_attempts = max_attempts

    def process(self, records: Sequence[ConsumedRecord]) -> BatchOutcome:
        """Handles a batch in one transaction.

        The fast path runs every handler with no savepoints. If anything fails, that
        transaction is rolled back and the batch is run again with one savepoint per message,
        so only the failing message is retried and dead-lettered. Handlers may therefore run
        more than once before a commit: their side effects must be idempotent, as
        redelivery already demands.
        """
        try:
            outcome = self._run(records, isolate=False)
        except Exception:
            metrics.isolated_batches.inc()
            outcome = self._run(records, isolate=True)
        for (topic, event_type, result), n in outcome.counts.items():
            metrics.messages_consumed.labels(topic, event_type, result).inc(n)
        for event_type, seconds in outcome.durations:
            metrics.handler_seconds.labels(event_type).observe(seconds)
        return outcome

    def _run(self, records: Sequence[ConsumedRecord], *, isolate: bool) -> BatchOutcome:
        outcome = BatchOutcome()
        with self._unit_of_work() as uow:
            seen = uow.already_handled(
                header_map(r.headers).get(HEADER_EVENT_ID, "") for r in records
            )
            admitted = [
                (record, envelope)
                for record in records
                if (envelope := self._admit(record, uow, seen, outcome)) is not None
            ]
            if self._prefetch is not None and admitted:
                self._prefetch([envelope for _, envelope in admitted], uow)
            for record, envelope in admitted:
                self._handle(record, envelope, uow, outcome, isolate)
            uow.commit()
        return outcome

    def _admit(
        self, record: ConsumedRecord, uow: UnitOfWork, seen: set[str], outcome: BatchOutcome
    ) -> Envelope | None:
        """The envelope to handle, or None: skipped, a duplicate, or dead-lettered as poison."""
        headers = header_map(record.headers)
        event_type = headers.get(HEADER_EVENT_TYPE, "unknown")
        if event_type in self._schemas.event_types and event_type not in self._handlers:
            outcome.count(record, event_type, "skipped")  # routed by header: no decode needed
            return None
        event_id = headers.get(HEADER_EVENT_ID, "")
        if event_id in seen:
            outcome.count(record, event_type, "duplicate")
            return None
        try:
            envelope = self._envelope(record, headers)
        except (DecodeError, MissingHeaderError) as error:
            self._dead_letter(uow, record, error, attempts=1)
            outcome.count(record, event_type, "dead_lettered")
            return None
        seen.add(envelope.event_id)
        return envelope

    def _handle(
        self,
        record: ConsumedRecord,
        envelope: Envelope,
        uow: UnitOfWork,
        outcome: BatchOutcome,
        isolate: bool,
    ) -> None:
        handler = self._handlers[envelope.event_type]
        with (
            log_context(
                event_id=envelope.event_id,
                event_type=envelope.event_type,
                correlation_id=envelope.correlation_id,
                trace_id=envelope.trace_id,
            ),
            tracing.consuming(record, envelope, self._group_id),  # a no-op when tracing is off
        ):
            started = time.perf_counter()
            if not isolate:
                handler(envelope, uow)  # a failure aborts the fast path (see process)
            elif not self._handle_isolated(handler, envelope, record, uow):
                outcome.count(record, envelope.event_type, "dead_lettered")
                return
            outcome.observe_duration(envelope.event_type, time.perf_counter() - started)
        uow.mark_handled(envelope)
        outcome.count(record, envelope.event_type, "ok")

    def _handle_isolated(
        self, handler: Handler, envelope: Envelope, record: ConsumedRecord, uow: UnitOfWork
    ) -> bool:
        """Retries the handler in savepoints; returns False once it was dead-lettered."""
        for attempt in range(1, self._max_attempts + 1):
            checkpoint = uow.checkpoint()
            savepoint = uow.session.begin_nested()
            try:
                handler(envelope, uow)
                uow.session.flush()
            except DBAPIError as error:
                if not _is_data_error(error):
                    raise  # deadlock, lost connection...: redeliver the batch, not a dead letter
                savepoint.rollback()
                uow.rewind(checkpoint)
                if attempt < self._max_attempts:
                    continue
                self._dead_letter(uow, record, error, attempts=attempt)
                return False
            except Exception as error:
                savepoint.rollback()
                uow.rewind(checkpoint)
                if attempt < self._max_attempts:
                    metrics.handler_retries.labels(envelope.event_type).inc()
                    continue
                log.exception("handler failed %d times; dead-lettering", attempt)
                self._dead_letter(uow, record, error, attempts=attempt)
                return False
            savepoint.commit()
            return True
        return False

    def _envelope(self, record: ConsumedRecord, headers: Mapping[str, str]) -> Envelope:
        if record.value is None:
            raise DecodeError("empty message value")
        decoded_type, payload = self._schemas.decode(record.value)
        header_type = headers.get(HEADER_EVENT_TYPE)
        if header_type != decoded_type:
            raise DecodeError(f"event_type header {header_type!r} but payload is {decoded_type}")
        key = (record.key or b"").decode("utf-8", "replace")
        return envelope_from_headers(headers, key, payload)

    def _dead_letter(
        self, uow: UnitOfWork, record: ConsumedRecord, error: BaseException, attempts: int
    ) -> None:
        """The poison message goes to <topic>.dlq via the outbox, in this same transaction."""
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        reason = {
            "dlq.error.type": type(error).__name__,
            "dlq.error.message": str(error)[:1000],
            "dlq.error.fingerprint": hashlib.sha1(stack.encode()).hexdigest()[:16],
            "dlq.source.topic": record.topic,
            "dlq.source.partition": str(record.partition),
            "dlq.source.offset": str(record.offset),
            "dlq.attempts": str(attempts),
            "dlq.consumer.group": self._group_id,
            "dlq.failed_at": datetime.now(UTC).isoformat(),
        }
        original = [(k, v) for k, v in record.headers if not k.startswith("dlq.")]
        uow.emit_raw(
            dead_letter_topic(record.topic),
            (record.key or b"").decode("utf-8", "replace"),
            record.value or b"",
            original + [(k, v.encode()) for k, v in reason.items()],
            header_map(record.headers).get(HEADER_EVENT_TYPE, "unknown"),
        )
        log.warning(
            "dead-lettered %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            reason["dlq.error.message"],
        )


class KafkaBatchConsumer:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        subscription: Subscription,
        processor: BatchProcessor,
        max_batch: int = 500,
        poll_timeout_ms: int = 100,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._group_id = group_id
        self._topics = subscription.topics
        self._processor = processor
        self._max_batch = max_batch
        self._poll_timeout_ms = poll_timeout_ms

    def _client(self) -> AIOKafkaConsumer:
        # Every option that matters is explicit: aiokafka's defaults are not safe for this job.
        return AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self._max_batch,
            fetch_max_wait_ms=self._poll_timeout_ms,
            # A crashed instance's partitions move to the others after this long; heartbeats
            # run in their own task, so a long batch does not count against it.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            max_poll_interval_ms=300_000,
        )

    async def run(self) -> None:
        consumer = self._client()
        await retry_forever(consumer.start, f"consumer {self._group_id} start")
        try:
            while True:
                batches: dict[TopicPartition, list[Any]] = await consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_batch
                )
                if batches:
                    await self._handle(consumer, batches)
        finally:
            await consumer.stop()

    async def _handle(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[Any]]
    ) -> None:
        # Facts about one order come from several topics; handling the batch in the order they
        # were produced (stable: each partition keeps its own order) keeps causes before effects.
        records = sorted(
            (record for partition in batches.values() for record in partition),
            key=lambda record: record.timestamp,
        )
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._processor.process, records)
        except Exception:
            # The transaction rolled back (e.g. the database is unavailable): rewind and let
            # the next poll redeliver the same batch after a pause.
            log.exception("batch of %d failed; it will be redelivered", len(records))
            still_ours = consumer.assignment()
            for tp, partition_records in batches.items():
                if tp in still_ours:  # a rebalance may have moved it: its new owner reads it
                    consumer.seek(tp, partition_records[0].offset)
            await asyncio.sleep(1.0)
            return
        metrics.batch_seconds.observe(time.perf_counter() - started)
        metrics.batch_size.observe(len(records))
        offsets = {tp: partition[-1].offset + 1 for tp, partition in batches.items()}
        try:
            await consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced meanwhile: the partitions' new owner redelivers the batch
            # and its inbox makes that harmless.
            log.warning("offset commit lost to a rebalance; the batch will be redelivered")
            return
        for tp, next_offset in offsets.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(highwater - next_offset, 0)
                )


def _is_data_error(error: DBAPIError) -> bool:
    """A constraint the message itself violates (poison), as opposed to the database failing."""
    return isinstance(error, IntegrityError)
