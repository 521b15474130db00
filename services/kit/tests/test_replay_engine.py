"""The replay engine on every database backend: handlers re-run, nothing published, twice
is once, a dry run keeps nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sample_service import (
    ROUTES,
    SCHEMAS,
    CompletedOrder,
    SampleBase,
    SampleDatabase,
    inbox,
    order_completed,
    outbox,
    record_completion,
)
from sqlalchemy import func, inspect, select

from kit.consumer import Subscription
from kit.database import create_database_engine
from kit.envelope import Envelope, header_map
from kit.records import StoredRecord
from kit.replay import Replayable, TableChanges, in_production_order, replay
from kit.service import ServiceDefinition

SAMPLE = Replayable(
    ServiceDefinition(
        name="sample",
        metadata=SampleBase.metadata,
        routes=ROUTES,
        subscription=Subscription(("orders.events",), {"OrderCompleted": record_completion}),
    )
)


def recorded(
    envelope: Envelope, offset: int, timestamp: int = 0, partition: int = 0
) -> StoredRecord:
    return StoredRecord(
        "orders.events",
        partition,
        offset,
        envelope.key.encode(),
        SCHEMAS.encode(envelope.event_type, envelope.payload),
        tuple(envelope.headers()),
        timestamp=timestamp or 1000 + offset,
    )


@pytest.fixture
def db(database_url: str) -> Iterator[SampleDatabase]:
    database = SampleDatabase(database_url)
    yield database
    database.engine.dispose()


def rows(db: SampleDatabase, table: object) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def times_seen(db: SampleDatabase) -> dict[str, int]:
    with db.sessions() as session:
        return {row.order_id: row.times_seen for row in session.scalars(select(CompletedOrder))}


def test_a_replay_runs_the_handlers_but_writes_nothing_to_the_outbox(db: SampleDatabase) -> None:
    records = [recorded(order_completed(f"o-{n}"), offset=n) for n in range(3)]

    report = replay(SAMPLE, records, db.url, SCHEMAS, batch_size=2)

    assert times_seen(db) == {"o-0": 1, "o-1": 1, "o-2": 1}
    assert (rows(db, inbox), rows(db, outbox)) == (3, 0)
    assert (report.records, report.handled, report.duplicates) == (3, 3, 0)
    assert report.changes == {
        "completed_orders": TableChanges(inserted=3),
        "inbox": TableChanges(inserted=3),
    }
    assert report.emitted == {("notifications.events", "NotificationSent"): 3}


def test_replaying_the_same_records_again_changes_nothing(db: SampleDatabase) -> None:
    records = [recorded(order_completed(f"o-{n}"), offset=n) for n in range(3)]
    replay(SAMPLE, records, db.url, SCHEMAS)

    again = replay(SAMPLE, records, db.url, SCHEMAS)

    assert (again.handled, again.duplicates) == (0, 3)
    assert not again.changed
    assert not again.emitted
    assert times_seen(db) == {"o-0": 1, "o-1": 1, "o-2": 1}


def test_a_dry_run_reports_what_would_change_and_keeps_nothing(db: SampleDatabase) -> None:
    replay(SAMPLE, [recorded(order_completed("o-old"), offset=0)], db.url, SCHEMAS)
    # o-1 completes twice (a re-published event: a new event id): the second batch must see
    # the row the first one inserted, though nothing is ever committed for good.
    records = [
        recorded(order_completed("o-1"), offset=1),
        recorded(order_completed("o-old"), offset=2),
        recorded(order_completed("o-1"), offset=3),
    ]

    report = replay(SAMPLE, records, db.url, SCHEMAS, dry_run=True, batch_size=1)

    assert report.handled == 3
    assert report.changes == {
        "completed_orders": TableChanges(inserted=1, updated=1),
        "inbox": TableChanges(inserted=3),
    }
    assert times_seen(db) == {"o-old": 1}
    assert (rows(db, inbox), rows(db, outbox)) == (1, 0)


def test_a_dry_run_into_an_empty_database_leaves_it_without_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    report = replay(
        SAMPLE, [recorded(order_completed("o-1"), offset=0)], url, SCHEMAS, dry_run=True
    )

    assert report.changes["completed_orders"] == TableChanges(inserted=1)
    engine = create_database_engine(url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_emit_writes_the_outbox_with_the_ids_the_replayable_assigns(db: SampleDatabase) -> None:
    replayable = Replayable(SAMPLE.definition, assign_event_id=lambda e: f"first-{e.causation_id}")
    cause = order_completed("o-1")

    report = replay(replayable, [recorded(cause, offset=0)], db.url, SCHEMAS, emit=True)

    assert report.changes["outbox"] == TableChanges(inserted=1)
    with db.engine.connect() as connection:
        [headers] = connection.execute(select(outbox.c.headers)).scalars()
    assert header_map([(k, v.encode()) for k, v in headers])["event_id"] == (
        f"first-{cause.event_id}"
    )


def test_partitions_are_merged_by_timestamp_each_in_offset_order() -> None:
    a = [recorded(order_completed(f"a{n}"), offset=n, timestamp=t) for n, t in enumerate((10, 30))]
    b = [
        recorded(order_completed(f"b{n}"), offset=n, timestamp=t, partition=1)
        for n, t in enumerate((20, 5, 40))
    ]
    # b's second record has an older timestamp than its first (another producer's clock):
    # the partition's own order still stands.
    merged = [r.key for r in in_production_order([*reversed(b), *reversed(a)])]
    assert merged == [b"a0", b"b0", b"b1", b"a1", b"b2"]
