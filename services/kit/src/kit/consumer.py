"""Batch consumption: one database transaction per batch, offsets committed after it.

`BatchProcessor` is the synchronous heart (decode, deduplicate, dispatch, dead-letter, park)
and knows nothing of Kafka's client; `KafkaBatchConsumer` feeds it batches from `getmany`
and commits the offsets only once the batch's transaction has committed. A crash in between
redelivers the batch, and the inbox makes that harmless.

A dead letter with a key blocks that key for this consumer group: every later message with
the key is parked (kept in the service's database, in arrival order) instead of handled, so
an order's events are never applied around a hole. `pipeline dlq redrive` sends the dead
letter back to its topic for this group alone; once it goes through, the parked messages
follow it, in order, in the same transaction. `pipeline dlq purge` sends a release control
record instead: the dead letter is dropped and the parked messages follow at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy import MetaData, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from kit import metrics, tracing
from kit.avro_codec import DecodeError, SchemaStore
from kit.database import parking_tables
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

# Dead-letter headers that the consumer and `pipeline dlq` agree on. A dead letter carries
# its message id; a redrive names the group it is for and counts on; a release control
# record (empty value) names the group and the dead letter it purges.
HEADER_MESSAGE_ID = "dlq.message.id"
HEADER_ATTEMPTS = "dlq.attempts"
HEADER_CONSUMER_GROUP = "dlq.consumer.group"
HEADER_REDRIVE_GROUP = "dlq.redrive.group"
HEADER_REDRIVE_ATTEMPT = "dlq.redrive.attempt"
HEADER_RELEASE_GROUP = "dlq.release.group"
HEADER_RELEASE_ID = "dlq.release.id"
RELEASE_EVENT_TYPE = "DeadLetterReleased"

# dead_letters.status
BLOCKING = "blocking"
RELEASED = "released"
PURGED = "purged"


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


DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


def message_id_of(record: ConsumedRecord, headers: Mapping[str, str]) -> str:
    """What identifies a message through dead-lettering and redrive: a redriven copy says
    whose copy it is; otherwise the event id, or where the message was for one without."""
    return (
        headers.get(HEADER_MESSAGE_ID)
        or headers.get(HEADER_EVENT_ID)
        or f"{record.topic}:{record.partition}:{record.offset}"
    )


class DrillFailure(RuntimeError):  # noqa: N818 - what dlq.error.type shows: a drill, no error
    """DRILL_FAIL_MESSAGES made the handler fail for this message, as a bug would."""


def _fail_for_drill(envelope: Envelope, uow: UnitOfWork) -> None:
    raise DrillFailure(
        f"fire drill: {envelope.event_type} {envelope.key} fails (DRILL_FAIL_MESSAGES)"
    )


@dataclass
class BatchOutcome:
    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    parked: int = 0
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    durations: list[tuple[str, float]] = field(default_factory=list)

    # The `outcome` label of pipeline_messages_consumed_total → the attribute counting it.
    _TALLIES = {
        "ok": "handled",
        "duplicate": "duplicates",
        "skipped": "skipped",
        "dead_lettered": "dead_lettered",
        "parked": "parked",
    }

    def count(self, record: ConsumedRecord, event_type: str, outcome: str) -> None:
        tally = self._TALLIES[outcome]
        setattr(self, tally, getattr(self, tally) + 1)
        key = (record.topic, event_type, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def observe_duration(self, event_type: str, seconds: float) -> None:
        self.durations.append((event_type, seconds))


# ----------------------------------------------------------------- dead letters and parking


@dataclass(frozen=True)
class ParkedRecord:
    """A parked message, a consumed record again (`ConsumedRecord`) when its key is released."""

    id: int
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class ParkingLot:
    """This group's dead letters that block their key and the messages parked behind them,
    in the service's own database, inside the batch's transaction."""

    def __init__(self, session: Session, metadata: MetaData) -> None:
        self._session = session
        self._dead_letters, self._parked = parking_tables(metadata)

    def blocking(self, keys: Iterable[str]) -> dict[str, str]:
        """Of `keys`, those blocked → the id of the dead letter blocking each (one query)."""
        wanted = {key for key in keys if key}
        if not wanted:
            return {}
        table = self._dead_letters
        rows = self._session.execute(
            select(table.c.key, table.c.message_id).where(
                table.c.status == BLOCKING, table.c.key.in_(wanted)
            )
        )
        return {key: message_id for key, message_id in rows}

    def block(
        self,
        message_id: str,
        key: str,
        record: ConsumedRecord,
        event_type: str,
        attempts: int,
        error: str,
    ) -> None:
        """Records a dead letter that blocks `key`; a redrive that failed again updates it."""
        table, now = self._dead_letters, datetime.now(UTC)
        values = {
            "key": key,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "event_type": event_type,
            "status": BLOCKING,
            "attempts": attempts,
            "error": error,
            "updated_at": now,
        }
        known = self._session.execute(
            select(table.c.message_id).where(table.c.message_id == message_id)
        ).first()
        if known is None:
            self._session.execute(
                insert(table).values(message_id=message_id, created_at=now, **values)
            )
        else:
            self._session.execute(
                update(table).where(table.c.message_id == message_id).values(**values)
            )

    def settle(self, message_id: str, status: str) -> None:
        """The dead letter stops blocking: `released` (its redrive went through) or `purged`."""
        table = self._dead_letters
        self._session.execute(
            update(table)
            .where(table.c.message_id == message_id)
            .values(status=status, updated_at=datetime.now(UTC))
        )

    def park(self, record: ConsumedRecord, key: str) -> None:
        self._session.execute(
            insert(self._parked).values(
                key=key,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                message_key=record.key,
                value=record.value,
                headers=[
                    [name, (raw or b"").decode("utf-8", "replace")] for name, raw in record.headers
                ],
                parked_at=datetime.now(UTC),
            )
        )

    def parked(self, key: str) -> list[ParkedRecord]:
        """The messages parked behind `key`, in the order they arrived."""
        table = self._parked
        rows = self._session.execute(
            select(table).where(table.c.key == key).order_by(table.c.id)
        ).all()
        return [
            ParkedRecord(
                row.id,
                row.topic,
                row.partition,
                row.offset,
                row.message_key,
                row.value,
                [(name, value.encode()) for name, value in row.headers],
            )
            for row in rows
        ]

    def unpark(self, ids: Collection[int]) -> None:
        if ids:
            self._session.execute(delete(self._parked).where(self._parked.c.id.in_(ids)))

    def report(self) -> None:
        """Sets the gauges of parked messages and of dead letters still blocking a key."""
        parked = self._session.scalar(select(func.count()).select_from(self._parked))
        blocking = self._session.scalar(
            select(func.count())
            .select_from(self._dead_letters)
            .where(self._dead_letters.c.status == BLOCKING)
        )
        metrics.parked_messages.set(parked or 0)
        metrics.dead_letters_open.set(blocking or 0)


def parking_probe(metadata: MetaData) -> Callable[[Session], None]:
    """The read every service runs periodically for its parking gauges (a `PeriodicProbe`)."""

    def probe(session: Session) -> None:
        ParkingLot(session, metadata).report()

    return probe


# ------------------------------------------------------------------------------ a batch

Verdict = Literal["handle", "release", "skipped", "duplicate"]


@dataclass
class _Admitted:
    """A record as admission found it, before the batch is handled in order."""

    record: ConsumedRecord
    headers: dict[str, str]
    event_type: str
    key: str
    message_id: str
    verdict: Verdict = "handle"
    redrive: bool = False  # a dead letter of this group, sent back for it by `dlq redrive`
    envelope: Envelope | None = None
    error: DecodeError | MissingHeaderError | None = None


@dataclass
class _Batch:
    """One run of a batch: its transaction, and what the run changed on the way."""

    uow: UnitOfWork
    parking: ParkingLot
    outcome: BatchOutcome
    isolate: bool
    # Blocked keys of the batch → the dead letter blocking each; kept current as the run
    # dead-letters and releases, so a message sees what the ones before it did.
    blocking: dict[str, str]
    # Message ids handled or dead-lettered in this run: a second copy is a duplicate.
    done: set[str] = field(default_factory=set)


class BatchProcessor:
    def __init__(
        self,
        subscription: Subscription,
        schemas: SchemaStore,
        unit_of_work: Callable[[], UnitOfWork],
        group_id: str,
        max_attempts: int = 3,
        drill_failures: Collection[tuple[str, str]] = (),
    ) -> None:
        """`drill_failures`: (event type, key) pairs whose handler fails (DRILL_FAIL_MESSAGES)."""
        self._handlers = subscription.handlers
        self._prefetch = subscription.prefetch
        self._schemas = schemas
        self._unit_of_work = unit_of_work
        self._group_id = group_id
        self._max_attempts = max_attempts
        self._drill = frozenset(drill_failures)

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
            admitted = self._admit_all(records, uow)
            parking = ParkingLot(uow.session, uow.metadata)
            blocking = parking.blocking(item.key for item in admitted)
            batch = _Batch(uow, parking, outcome, isolate, blocking)
            for item in admitted:
                self._consume(item, batch)
            uow.commit()
        return outcome

    def _admit_all(self, records: Sequence[ConsumedRecord], uow: UnitOfWork) -> list[_Admitted]:
        """Sorts out what needs no handling and decodes the rest; prefetches for the batch."""
        headers = [header_map(record.headers) for record in records]
        seen = uow.already_handled(h.get(HEADER_EVENT_ID, "") for h in headers)
        admitted = [self._admit(r, h, seen) for r, h in zip(records, headers, strict=True)]
        envelopes = [item.envelope for item in admitted if item.envelope is not None]
        if self._prefetch is not None and envelopes:
            self._prefetch(envelopes, uow)
        return admitted

    def _admit(
        self, record: ConsumedRecord, headers: dict[str, str], seen: Collection[str]
    ) -> _Admitted:
        item = _Admitted(
            record,
            headers,
            headers.get(HEADER_EVENT_TYPE, "unknown"),
            (record.key or b"").decode("utf-8", "replace"),
            message_id_of(record, headers),
        )
        if HEADER_RELEASE_GROUP in headers:
            # A control record: never decoded, never handled, never dead-lettered.
            mine = headers[HEADER_RELEASE_GROUP] == self._group_id
            item.verdict = "release" if mine else "skipped"
            return item
        redrive_group = headers.get(HEADER_REDRIVE_GROUP)
        if redrive_group is not None and redrive_group != self._group_id:
            item.verdict = "skipped"  # another group's dead letter: this one handled it
            return item
        item.redrive = redrive_group is not None
        if item.event_type in self._schemas.event_types and item.event_type not in self._handlers:
            item.verdict = "skipped"  # routed by header: no decode needed
            return item
        if headers.get(HEADER_EVENT_ID, "") in seen:
            item.verdict = "duplicate"
            return item
        try:
            item.envelope = self._envelope(record, headers)
        except (DecodeError, MissingHeaderError) as error:
            item.error = error  # poison: dead-lettered in its turn, unless it must wait
        return item

    def _consume(self, item: _Admitted, batch: _Batch) -> None:
        """One message, in batch order: what came before it may have blocked its key."""
        if item.verdict == "release":
            self._purge(item, batch)
            return
        if item.verdict != "handle" or item.message_id in batch.done:
            verdict = "duplicate" if item.verdict == "handle" else item.verdict
            batch.outcome.count(item.record, item.event_type, verdict)
            if item.redrive and batch.blocking.get(item.key) == item.message_id:
                # The dead letter came back and needs no handling here (handled meanwhile,
                # or of a type this service no longer handles): its key flows again.
                self._release(batch, item.key, item.message_id, RELEASED)
            return
        blocker = batch.blocking.get(item.key)
        if blocker is not None and not (item.redrive and item.message_id == blocker):
            batch.parking.park(item.record, item.key)
            batch.outcome.count(item.record, item.event_type, "parked")
            log.info(
                "parked %s[%d]@%d: key %s waits for dead letter %s",
                item.record.topic,
                item.record.partition,
                item.record.offset,
                item.key,
                blocker,
            )
            return
        if item.envelope is None:
            assert item.error is not None
            self._dead_letter(batch, item, item.error, attempts=1)
            batch.outcome.count(item.record, item.event_type, "dead_lettered")
            return
        if self._handle(item, item.envelope, batch) and blocker is not None:
            # The dead letter itself came back and went through: its key flows again.
            self._release(batch, item.key, blocker, RELEASED)

    def _handle(self, item: _Admitted, envelope: Envelope, batch: _Batch) -> bool:
        """Runs the handler; False if the message was dead-lettered instead."""
        handler = self._handlers[envelope.event_type]
        if (envelope.event_type, envelope.key) in self._drill:
            handler = _fail_for_drill
        record, uow, outcome = item.record, batch.uow, batch.outcome
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
            if not batch.isolate:
                handler(envelope, uow)  # a failure aborts the fast path (see process)
            elif not self._handle_isolated(handler, item, envelope, batch):
                outcome.count(record, envelope.event_type, "dead_lettered")
                return False
            outcome.observe_duration(envelope.event_type, time.perf_counter() - started)
        uow.mark_handled(envelope)
        batch.done.add(item.message_id)
        outcome.count(record, envelope.event_type, "ok")
        return True

    def _handle_isolated(
        self, handler: Handler, item: _Admitted, envelope: Envelope, batch: _Batch
    ) -> bool:
        """Retries the handler in savepoints; returns False once it was dead-lettered."""
        uow = batch.uow
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
                self._dead_letter(batch, item, error, attempts=attempt)
                return False
            except Exception as error:
                savepoint.rollback()
                uow.rewind(checkpoint)
                if attempt < self._max_attempts:
                    metrics.handler_retries.labels(envelope.event_type).inc()
                    continue
                log.exception("handler failed %d times; dead-lettering", attempt)
                self._dead_letter(batch, item, error, attempts=attempt)
                return False
            savepoint.commit()
            return True
        return False

    def _purge(self, item: _Admitted, batch: _Batch) -> None:
        """A release control record of this group: the dead letter is dropped for good."""
        purged = item.headers.get(HEADER_RELEASE_ID, "")
        if not item.key or batch.blocking.get(item.key) != purged:
            # Already released or purged (a repeated purge): nothing waits for it any more.
            batch.outcome.count(item.record, item.event_type, "skipped")
            return
        log.warning("dead letter %s purged; key %s flows again", purged, item.key)
        self._release(batch, item.key, purged, PURGED)
        batch.outcome.count(item.record, item.event_type, "ok")

    def _release(self, batch: _Batch, key: str, message_id: str, status: str) -> None:
        """The dead letter stops blocking `key`: the messages parked behind it are handled
        now, in arrival order, as if they had just come, until one of them is dead-lettered
        in turn (it blocks the key again and the rest keep waiting for it)."""
        batch.parking.settle(message_id, status)
        del batch.blocking[key]
        parked = batch.parking.parked(key)
        if not parked:
            return
        admitted = self._admit_all(parked, batch.uow)
        for item in admitted:
            if status == PURGED and item.message_id == message_id:
                item.verdict = "skipped"  # a copy of the purged message goes with it
        released: list[int] = []
        for record, item in zip(parked, admitted, strict=True):
            self._consume(item, batch)
            released.append(record.id)
            if key in batch.blocking:
                break
        batch.parking.unpark(released)
        log.info("released %d of %d messages parked behind key %s", len(released), len(parked), key)

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
        self, batch: _Batch, item: _Admitted, error: BaseException, attempts: int
    ) -> None:
        """The poison message goes to <topic>.dlq via the outbox, in this same transaction;
        with a key, it blocks that key for this group until it is redriven or purged."""
        record, headers = item.record, item.headers
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        # A redriven message counts on from the attempts of its earlier lives.
        total = attempts + _count(headers.get(HEADER_ATTEMPTS))
        reason = {
            "dlq.error.type": type(error).__name__,
            "dlq.error.message": str(error)[:1000],
            "dlq.error.fingerprint": hashlib.sha1(stack.encode()).hexdigest()[:16],
            "dlq.source.topic": record.topic,
            "dlq.source.partition": str(record.partition),
            "dlq.source.offset": str(record.offset),
            HEADER_ATTEMPTS: str(total),
            HEADER_CONSUMER_GROUP: self._group_id,
            "dlq.failed_at": datetime.now(UTC).isoformat(),
            HEADER_MESSAGE_ID: item.message_id,
        }
        if HEADER_REDRIVE_ATTEMPT in headers:
            reason[HEADER_REDRIVE_ATTEMPT] = headers[HEADER_REDRIVE_ATTEMPT]
        original = [(k, v) for k, v in record.headers if not k.startswith("dlq.")]
        batch.uow.emit_raw(
            dead_letter_topic(record.topic),
            item.key,
            record.value or b"",
            original + [(k, v.encode()) for k, v in reason.items()],
            item.event_type,
        )
        batch.done.add(item.message_id)
        if item.key:
            described = f"{reason['dlq.error.type']}: {reason['dlq.error.message']}"
            batch.parking.block(
                item.message_id, item.key, record, item.event_type, total, described
            )
            batch.blocking[item.key] = item.message_id
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


def _count(header: str | None) -> int:
    """A count from a header; anything else (absent, garbled) counts as none."""
    try:
        return max(int(header or 0), 0)
    except ValueError:
        return 0
