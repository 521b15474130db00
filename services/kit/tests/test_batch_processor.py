"""The consumer's transactional heart, on every database backend, without a broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sample_service import (
    SCHEMAS,
    CompletedOrder,
    SampleDatabase,
    inbox,
    order_completed,
    outbox,
    record_completion,
)
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from kit.consumer import BatchProcessor, Subscription
from kit.envelope import Envelope, header_map
from kit.records import StoredRecord
from kit.testing import service_harness
from kit.unit_of_work import UnitOfWork


def record_of(envelope: Envelope, offset: int = 0) -> StoredRecord:
    return service_harness.record_of(envelope, SCHEMAS, "orders.events", offset)


@pytest.fixture
def db(database_url: str) -> Iterator[SampleDatabase]:
    database = SampleDatabase(database_url)
    yield database
    database.engine.dispose()


def processor(db: SampleDatabase, handler=record_completion) -> BatchProcessor:  # type: ignore[no-untyped-def]
    subscription = Subscription(("orders.events",), {"OrderCompleted": handler})
    return BatchProcessor(subscription, SCHEMAS, db.unit_of_work, group_id="sample", max_attempts=3)


def times_seen(db: SampleDatabase, order_id: str) -> int:
    with db.sessions() as session:
        row = session.get(CompletedOrder, order_id)
        assert row is not None, f"{order_id} was never stored"
        return row.times_seen


def count(db: SampleDatabase, table: object) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_a_handled_message_commits_state_inbox_and_outbox_together(db: SampleDatabase) -> None:
    outcome = processor(db).process([record_of(order_completed("o-1"))])
    assert outcome.handled == 1
    assert count(db, CompletedOrder.__table__) == 1
    assert count(db, inbox) == 1
    assert count(db, outbox) == 1
    assert db.notified == [1]


def test_a_redelivered_event_changes_nothing(db: SampleDatabase) -> None:
    record = record_of(order_completed("o-1"))
    processor(db).process([record])
    outcome = processor(db).process([record, record])
    assert outcome.duplicates == 2
    assert times_seen(db, "o-1") == 1
    assert count(db, outbox) == 1


def test_garbage_goes_to_the_dead_letter_topic_and_the_batch_carries_on(db: SampleDatabase) -> None:
    good = record_of(order_completed("o-2"), offset=8)
    garbage = StoredRecord(
        "orders.events",
        3,
        7,
        b"o-1",
        b"\x00not avro",
        [("event_id", b"e-bad"), ("event_type", b"OrderCompleted")],
    )
    outcome = processor(db).process([garbage, good])
    assert (outcome.dead_lettered, outcome.handled) == (1, 1)
    with db.engine.connect() as connection:
        dead = connection.execute(select(outbox).where(outbox.c.topic == "orders.events.dlq")).one()
    headers = dict(dead.headers)
    assert dead.value == b"\x00not avro"
    assert dead.message_key == "o-1"
    assert headers["dlq.error.type"] == "DecodeError"
    assert "bad marker" in headers["dlq.error.message"]
    assert (headers["dlq.source.partition"], headers["dlq.source.offset"]) == ("3", "7")
    assert count(db, inbox) == 1  # the poison message is not marked: a redrive will run it


def test_a_failing_handler_is_retried_then_dead_lettered_leaving_no_trace(
    db: SampleDatabase,
) -> None:
    attempts: list[str] = []

    def flaky(envelope: Envelope, uow: UnitOfWork) -> None:
        attempts.append(envelope.event_id)
        record_completion(envelope, uow)
        raise RuntimeError("handler bug")

    outcome = processor(db, flaky).process([record_of(order_completed("o-3"))])
    assert len(attempts) == 1 + 3  # the fast path, then three isolated attempts
    assert outcome.dead_lettered == 1
    assert count(db, CompletedOrder.__table__) == 0
    with db.engine.connect() as connection:
        topics = [row.topic for row in connection.execute(select(outbox))]
    assert topics == ["orders.events.dlq"]  # the handler's own emits were rewound
    with db.engine.connect() as connection:
        row = connection.execute(select(outbox)).one()
    assert dict(row.headers)["dlq.attempts"] == "3"


def test_a_handler_that_succeeds_on_retry_is_applied_once(db: SampleDatabase) -> None:
    calls: list[int] = []

    def fails_once(envelope: Envelope, uow: UnitOfWork) -> None:
        calls.append(1)
        record_completion(envelope, uow)
        if len(calls) == 1:
            raise RuntimeError("transient")

    outcome = processor(db, fails_once).process([record_of(order_completed("o-4"))])
    assert outcome.handled == 1
    assert times_seen(db, "o-4") == 1
    assert count(db, outbox) == 1


def test_event_types_the_service_ignores_are_skipped_without_decoding(db: SampleDatabase) -> None:
    other = StoredRecord(
        "orders.events",
        0,
        1,
        b"o-5",
        b"undecodable",
        [("event_id", b"e-5"), ("event_type", b"OrderPlaced")],
    )
    outcome = processor(db).process([other])
    assert outcome.skipped == 1
    assert count(db, outbox) == 0


def test_a_message_without_headers_is_dead_lettered(db: SampleDatabase) -> None:
    envelope = order_completed("o-6")
    bare = StoredRecord(
        "orders.events", 0, 2, b"o-6", SCHEMAS.encode("OrderCompleted", envelope.payload)
    )
    outcome = processor(db).process([bare])
    assert outcome.dead_lettered == 1
    with db.engine.connect() as connection:
        row = connection.execute(select(outbox)).one()
    assert header_map([(k, v.encode()) for k, v in row.headers])["dlq.error.type"] in {
        "DecodeError",
        "MissingHeaderError",
    }


def test_a_failing_message_is_dead_lettered_alone_and_its_batch_mates_are_applied(
    db: SampleDatabase,
) -> None:
    def refuses_o8(envelope: Envelope, uow: UnitOfWork) -> None:
        record_completion(envelope, uow)
        if envelope.payload["order_id"] == "o-8":
            raise RuntimeError("o-8 is poison")

    batch = [record_of(order_completed(o), offset=n) for n, o in enumerate(["o-7", "o-8", "o-9"])]
    outcome = processor(db, refuses_o8).process(batch)
    assert (outcome.handled, outcome.dead_lettered) == (2, 1)
    with db.sessions() as session:
        assert set(session.scalars(select(CompletedOrder.order_id))) == {"o-7", "o-9"}
    with db.engine.connect() as connection:
        topics = sorted(row.topic for row in connection.execute(select(outbox)))
    assert topics == ["notifications.events", "notifications.events", "orders.events.dlq"]


def test_a_database_failure_is_not_poison_the_batch_fails_and_is_redelivered(
    db: SampleDatabase,
) -> None:
    def database_gone(envelope: Envelope, uow: UnitOfWork) -> None:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    with pytest.raises(OperationalError):
        processor(db, database_gone).process([record_of(order_completed("o-10"))])
    assert count(db, outbox) == 0  # nothing dead-lettered: the consumer will redeliver it
    assert count(db, inbox) == 0
