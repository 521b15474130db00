"""Replay: a service's own handlers run again over recorded messages, into a database,
with no side effect.

The records (read from the topics by the caller, e.g. `pipeline replay`) are handled exactly
as the live consumer handles them — `BatchProcessor`, one transaction per batch, the same
handlers and prefetch — in production-timestamp order across every topic, which is the
order the live consumer sorts each batch into. What differs is the unit of work:

- nothing is written to the outbox unless `emit` is asked for, so the broker never hears of
  a replay; what would have been published is counted in the report instead;
- the inbox works as it always does, so a replay is idempotent: a second one finds every
  event handled and changes nothing;
- `dry_run` runs everything inside one transaction that is rolled back at the end, and the
  report says what would have changed (rows per table, messages per topic).

Adapters that reach outside the process (a mail channel, a payment provider, a carrier) are
the service's business: it builds its `Replayable` with ones that do nothing, or refuses to
be replayed (see each service's `replay.py`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, MetaData, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from kit.avro_codec import SchemaStore
from kit.consumer import BatchOutcome, BatchProcessor, Subscription
from kit.database import create_database_engine
from kit.envelope import Envelope
from kit.records import StoredRecord
from kit.service import ServiceDefinition
from kit.unit_of_work import UnitOfWork

DEFAULT_BATCH = 500


def in_production_order(records: Iterable[StoredRecord]) -> Iterator[StoredRecord]:
    """Every partition merged by record timestamp, each kept in offset order: causes before
    effects across topics (an effect is produced after its cause was consumed), as the live
    consumer orders a batch. Ties go by topic and partition, so two replays agree."""
    partitions: defaultdict[tuple[str, int], list[StoredRecord]] = defaultdict(list)
    for record in records:
        partitions[(record.topic, record.partition)].append(record)
    streams = [
        sorted(partitions[where], key=lambda record: record.offset) for where in sorted(partitions)
    ]
    return heapq.merge(*streams, key=lambda record: record.timestamp)


@dataclass(frozen=True)
class Replayable:
    """A service as a replay runs it.

    `definition` is built with adapters that do nothing outside the process (no mail, no
    payment provider call, no carrier booking). `subscription` is what the replay feeds:
    the definition's own unless the service needs more to rebuild from the log alone (the
    orders service also reads its own topics). `assign_event_id` gives a message the handlers
    emit the id it had when it was first emitted, where the service can tell. `replay`
    takes the records in the order given: `arrange` them first."""

    definition: ServiceDefinition
    subscription: Subscription | None = None
    assign_event_id: Callable[[Envelope], str] | None = None
    # The order the handlers get the records in: production order unless the service can
    # tell better from the log itself (the orders saga can: see `orders.replay`).
    arrange: Callable[[Iterable[StoredRecord]], Iterable[StoredRecord]] = in_production_order

    @property
    def feeds(self) -> Subscription:
        subscription = self.subscription or self.definition.subscription
        if subscription is None:
            raise ValueError(f"{self.definition.name} consumes nothing: nothing to replay")
        return subscription

    @property
    def topics(self) -> tuple[str, ...]:
        return self.feeds.topics


@dataclass
class TableChanges:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass
class ReplayReport:
    service: str
    dry_run: bool
    emit: bool
    records: int = 0
    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    parked: int = 0  # held behind a dead letter of the same key, as the live consumer would
    changes: dict[str, TableChanges] = field(default_factory=dict)
    # (topic, event type) -> how many the handlers emitted: published only with `emit`
    emitted: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, outcome: BatchOutcome) -> None:
        self.handled += outcome.handled
        self.duplicates += outcome.duplicates
        self.skipped += outcome.skipped
        self.dead_lettered += outcome.dead_lettered
        self.parked += outcome.parked

    @property
    def changed(self) -> bool:
        return any(vars(c) != vars(TableChanges()) for c in self.changes.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "dry_run": self.dry_run,
            "emit": self.emit,
            "records": self.records,
            "handled": self.handled,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "dead_lettered": self.dead_lettered,
            "parked": self.parked,
            "changes": {table: vars(c) for table, c in sorted(self.changes.items())},
            "emitted": [
                {"topic": topic, "event_type": event_type, "count": n}
                for (topic, event_type), n in sorted(self.emitted.items())
            ],
        }


class _ChangeTally:
    """Rows the handlers inserted, updated and deleted, per table, counted once each.

    Counted at each flush and kept once the session commits; a rolled-back batch counts
    nothing. (A handler retried inside a savepoint that flushed before failing would still be
    counted: a replay whose handlers fail says so in `dead_lettered` anyway.)"""

    _KINDS = ("inserted", "updated", "deleted")

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._rows: dict[str, set[tuple[str, tuple[Any, ...]]]] = {k: set() for k in self._KINDS}
        event.listen(factory, "after_flush", self._flushed)
        event.listen(factory, "after_commit", self._committed)
        event.listen(factory, "after_soft_rollback", self._rolled_back)

    @staticmethod
    def _pending(session: Session) -> dict[str, set[tuple[str, tuple[Any, ...]]]]:
        pending: dict[str, set[tuple[str, tuple[Any, ...]]]] = session.info.setdefault(
            "replay_changes", {k: set() for k in _ChangeTally._KINDS}
        )
        return pending

    def _flushed(self, session: Session, _context: object) -> None:
        pending = self._pending(session)
        for kind, objects in (
            ("inserted", session.new),
            ("updated", [o for o in session.dirty if session.is_modified(o)]),
            ("deleted", session.deleted),
        ):
            for obj in objects:
                mapper = inspect(obj).mapper
                key = tuple(mapper.primary_key_from_instance(obj))
                pending[kind].add((mapper.local_table.description, key))

    def _committed(self, session: Session) -> None:
        for kind, rows in session.info.pop("replay_changes", {}).items():
            self._rows[kind] |= rows

    def _rolled_back(self, session: Session, _previous: object) -> None:
        session.info.pop("replay_changes", None)

    def changes(self) -> dict[str, TableChanges]:
        inserted = self._rows["inserted"]
        tables: defaultdict[str, TableChanges] = defaultdict(TableChanges)
        for table, _ in inserted:
            tables[table].inserted += 1
        for table, _ in self._rows["updated"] - inserted:
            tables[table].updated += 1
        for table, _ in self._rows["deleted"]:
            tables[table].deleted += 1
        return dict(tables)


def replay(
    replayable: Replayable,
    records: Iterable[StoredRecord],
    database_url: str,
    schemas: SchemaStore,
    *,
    dry_run: bool = False,
    emit: bool = False,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int], None] = lambda handled: None,
) -> ReplayReport:
    """Feeds `records` (in the order given: see `Replayable.arrange`) to the service's
    handlers against `database_url`, creating the service's tables if they are missing.
    `on_batch(n)` is told after each batch how many records it held."""
    definition = replayable.definition
    report = ReplayReport(definition.name, dry_run=dry_run, emit=emit)

    def count_emitted(envelope: Envelope) -> None:
        report.emitted[(definition.routes[envelope.event_type], envelope.event_type)] += 1

    engine = create_database_engine(database_url)
    try:
        with _sessions(engine, definition.metadata, dry_run) as factory:
            tally = _ChangeTally(factory)

            def unit_of_work() -> UnitOfWork:
                return UnitOfWork(
                    factory,
                    schemas,
                    definition.routes,
                    definition.metadata.tables["outbox"],
                    definition.metadata.tables["inbox"],
                    definition.name,
                    on_emit_committed=count_emitted,
                    write_outbox=emit,
                    assign_event_id=replayable.assign_event_id,
                )

            # As the live group: the redrives and releases on the topics name it, and the
            # replay must settle its dead letters the way the live consumer did.
            processor = BatchProcessor(
                replayable.feeds, schemas, unit_of_work, group_id=definition.name
            )
            for batch in _batches(records, batch_size):
                report.add(processor.process(batch))
                report.records += len(batch)
                on_batch(len(batch))
            report.changes = tally.changes()
    finally:
        engine.dispose()
    # The kit's own tables are written with Core, not the ORM: counted from the outcome.
    if report.handled:
        report.changes["inbox"] = TableChanges(inserted=report.handled)
    if emit and report.emitted:
        report.changes["outbox"] = TableChanges(inserted=sum(report.emitted.values()))
    return report


@contextlib.contextmanager
def _sessions(engine: Engine, metadata: MetaData, dry_run: bool) -> Iterator[sessionmaker[Session]]:
    """Sessions on the target database, its tables created if missing."""
    if not dry_run:
        metadata.create_all(engine)
        yield sessionmaker(engine, expire_on_commit=False)
        return
    # A dry run's sessions commit savepoints of one outer transaction that is rolled back at
    # the end: each batch sees the ones before it, the database keeps none of it. (It holds
    # that transaction throughout: on SQLite, the write lock.)
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            metadata.create_all(connection)
            yield sessionmaker(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            )
        finally:
            outer.rollback()


def _batches(records: Iterable[StoredRecord], size: int) -> Iterator[list[StoredRecord]]:
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
