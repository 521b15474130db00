"""Dead letters block their key; later messages with it are parked until a redrive or a purge
releases them, in order. On every database backend, without a broker."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sample_service import (
    SCHEMAS,
    SampleBase,
    SampleDatabase,
    order_completed,
    outbox,
    record_completion,
)
from sqlalchemy import select

from kit.consumer import (
    HEADER_ATTEMPTS,
    HEADER_CONSUMER_GROUP,
    HEADER_MESSAGE_ID,
    HEADER_REDRIVE_ATTEMPT,
    HEADER_REDRIVE_GROUP,
    HEADER_RELEASE_GROUP,
    HEADER_RELEASE_ID,
    RELEASE_EVENT_TYPE,
    BatchProcessor,
    Subscription,
    parking_probe,
)
from kit.database import parking_tables
from kit.envelope import Envelope
from kit.records import StoredRecord
from kit.testing import service_harness
from kit.unit_of_work import UnitOfWork

GROUP = "sample"
dead_letters, parked_messages = parking_tables(SampleBase.metadata)


class Consumer:
    """The sample service's consumer, whose handler fails for the order ids in `failing`, and
    which notes, once each batch commits, the event ids it handled, in order."""

    def __init__(self, db: SampleDatabase, drill: Collection[tuple[str, str]] = ()) -> None:
        self.db = db
        self.failing: set[str] = set()
        self.applied: list[str] = []
        self._offset = 0
        subscription = Subscription(("orders.events",), {"OrderCompleted": self._handle})
        self.processor = BatchProcessor(
            subscription, SCHEMAS, db.unit_of_work, GROUP, max_attempts=3, drill_failures=drill
        )

    def _handle(self, envelope: Envelope, uow: UnitOfWork) -> None:
        record_completion(envelope, uow)
        if envelope.key in self.failing:
            raise RuntimeError(f"bug for {envelope.key}")
        uow.after_commit(partial(self.applied.append, envelope.event_id))

    def record(self, envelope: Envelope, topic: str = "orders.events") -> StoredRecord:
        self._offset += 1
        return service_harness.record_of(envelope, SCHEMAS, topic, self._offset)

    def consume(self, *records: StoredRecord) -> Any:
        return self.processor.process(records)

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter staged so far, oldest first."""
        with self.db.engine.connect() as connection:
            rows = connection.execute(
                select(outbox).where(outbox.c.topic.like("%.dlq")).order_by(outbox.c.id)
            )
            return [DeadLetter(dict(row.headers), row.message_key, row.value) for row in rows]

    def dead_letter_rows(self) -> dict[str, tuple[str, str, int]]:
        """message id → (key, status, attempts)."""
        with self.db.engine.connect() as connection:
            rows = connection.execute(
                select(
                    dead_letters.c.message_id,
                    dead_letters.c.key,
                    dead_letters.c.status,
                    dead_letters.c.attempts,
                )
            )
            return {row.message_id: (row.key, row.status, row.attempts) for row in rows}

    def parked(self) -> list[str]:
        """The event ids of the parked messages, in arrival order."""
        with self.db.engine.connect() as connection:
            rows = connection.execute(
                select(parked_messages.c.headers).order_by(parked_messages.c.id)
            )
            return [dict(headers)["event_id"] for (headers,) in rows]


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter as the outbox relay would publish it to `<topic>.dlq`."""

    headers: dict[str, str]
    key: str
    value: bytes

    @property
    def message_id(self) -> str:
        return self.headers[HEADER_MESSAGE_ID]


def redrive_of(dead: DeadLetter, group: str = GROUP) -> StoredRecord:
    """What `pipeline dlq redrive` sends back to the source topic for a dead letter."""
    original = [(k, v.encode()) for k, v in dead.headers.items() if not k.startswith("dlq.")]
    previous = int(dead.headers.get(HEADER_REDRIVE_ATTEMPT, "0"))
    headers = [
        *original,
        (HEADER_REDRIVE_GROUP, group.encode()),
        (HEADER_REDRIVE_ATTEMPT, str(previous + 1).encode()),
        (HEADER_MESSAGE_ID, dead.message_id.encode()),
        (HEADER_ATTEMPTS, dead.headers[HEADER_ATTEMPTS].encode()),
    ]
    source = dead.headers["dlq.source.topic"]
    return StoredRecord(source, 0, 1000 + previous, dead.key.encode(), dead.value, headers)


def release_of(dead: DeadLetter, group: str = GROUP) -> StoredRecord:
    """The control record `pipeline dlq purge` sends: no value, only what it releases."""
    headers = [
        ("event_type", RELEASE_EVENT_TYPE.encode()),
        (HEADER_RELEASE_GROUP, group.encode()),
        (HEADER_RELEASE_ID, dead.message_id.encode()),
    ]
    return StoredRecord(dead.headers["dlq.source.topic"], 0, 2000, dead.key.encode(), b"", headers)


@pytest.fixture
def db(database_url: str) -> Iterator[SampleDatabase]:
    database = SampleDatabase(database_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def consumer(db: SampleDatabase) -> Consumer:
    return Consumer(db)


def test_a_dead_letter_parks_the_later_messages_of_its_key_and_no_other(
    consumer: Consumer,
) -> None:
    poison, waiting, also_waiting = (order_completed("o-1") for _ in range(3))
    other = order_completed("o-2")
    consumer.failing.add("o-1")
    consumer.consume(consumer.record(poison))
    consumer.failing.clear()  # from now on o-1 would go through: it waits all the same

    outcome = consumer.consume(consumer.record(waiting), consumer.record(other))
    assert (outcome.parked, outcome.handled) == (1, 1)
    later = consumer.consume(consumer.record(also_waiting, topic="inventory.events"))
    assert later.parked == 1  # the key is blocked on every topic the group reads
    assert consumer.applied == [other.event_id]
    assert consumer.parked() == [waiting.event_id, also_waiting.event_id]
    assert consumer.dead_letter_rows() == {poison.event_id: ("o-1", "blocking", 3)}
    [dead] = consumer.dead_letters()
    assert dead.message_id == poison.event_id
    assert dead.headers[HEADER_CONSUMER_GROUP] == GROUP


def test_messages_after_a_dead_letter_in_its_own_batch_wait_and_those_before_do_not(
    consumer: Consumer,
) -> None:
    first, failing, second = (order_completed("o-1") for _ in range(3))
    neighbour = order_completed("o-2")
    batch = [consumer.record(e) for e in (first, failing, neighbour, second)]

    def refuses_the_poison(envelope: Envelope, uow: UnitOfWork) -> None:
        if envelope.event_id == failing.event_id:
            raise RuntimeError("this one message is poison")
        record_completion(envelope, uow)
        uow.after_commit(partial(consumer.applied.append, envelope.event_id))

    consumer.processor = BatchProcessor(
        Subscription(("orders.events",), {"OrderCompleted": refuses_the_poison}),
        SCHEMAS,
        consumer.db.unit_of_work,
        GROUP,
    )
    outcome = consumer.consume(*batch)
    assert (outcome.handled, outcome.dead_lettered, outcome.parked) == (2, 1, 1)
    assert consumer.applied == [first.event_id, neighbour.event_id]
    assert consumer.parked() == [second.event_id]
    assert consumer.dead_letter_rows() == {failing.event_id: ("o-1", "blocking", 3)}


def test_a_redriven_dead_letter_goes_through_and_the_parked_messages_follow_in_order(
    consumer: Consumer,
) -> None:
    poison, waiting, also_waiting, afterwards = (order_completed("o-1") for _ in range(4))
    consumer.failing.add("o-1")
    consumer.consume(consumer.record(poison), consumer.record(waiting))
    consumer.failing.clear()  # the bug is fixed
    consumer.consume(consumer.record(also_waiting, topic="inventory.events"))
    [dead] = consumer.dead_letters()

    outcome = consumer.consume(consumer.record(afterwards), redrive_of(dead))
    # `afterwards` came first in the batch while o-1 was blocked: it waits its turn.
    assert outcome.handled == 4
    assert consumer.applied == [
        poison.event_id,
        waiting.event_id,
        also_waiting.event_id,
        afterwards.event_id,
    ]
    assert consumer.parked() == []
    assert consumer.dead_letter_rows()[poison.event_id] == ("o-1", "released", 3)
    fresh = order_completed("o-1")
    assert consumer.consume(consumer.record(fresh)).handled == 1  # the key flows again


def test_a_redriven_dead_letter_of_a_type_no_longer_handled_releases_its_key(
    db: SampleDatabase,
) -> None:
    failing = Consumer(db)
    poison, waiting = order_completed("o-4"), order_completed("o-4")
    failing.failing.add("o-4")
    failing.consume(failing.record(poison), failing.record(waiting))
    [dead] = failing.dead_letters()

    # The fix was to stop handling OrderCompleted here: the redrive needs no handling, and
    # must not leave o-4 blocked behind a dead letter nobody can act on any more.
    fixed = Consumer(db)
    fixed.processor = BatchProcessor(
        Subscription(("orders.events",), {}), SCHEMAS, db.unit_of_work, GROUP, max_attempts=3
    )
    outcome = fixed.consume(redrive_of(dead))
    assert outcome.skipped >= 1
    assert failing.dead_letter_rows()[poison.event_id][1] == "released"
    assert failing.parked() == []


def test_a_redrive_that_fails_again_is_dead_lettered_again_counting_every_attempt(
    consumer: Consumer,
) -> None:
    poison, waiting = order_completed("o-1"), order_completed("o-1")
    consumer.failing.add("o-1")
    consumer.consume(consumer.record(poison), consumer.record(waiting))
    [first] = consumer.dead_letters()

    outcome = consumer.consume(redrive_of(first))  # the bug is still there
    assert outcome.dead_lettered == 1
    [_, second] = consumer.dead_letters()
    assert second.message_id == poison.event_id
    assert (second.headers[HEADER_ATTEMPTS], second.headers[HEADER_REDRIVE_ATTEMPT]) == ("6", "1")
    assert HEADER_REDRIVE_GROUP not in second.headers  # it names its group as any dead letter
    assert consumer.dead_letter_rows() == {poison.event_id: ("o-1", "blocking", 6)}
    assert consumer.parked() == [waiting.event_id]
    assert consumer.applied == []

    consumer.failing.clear()
    consumer.consume(redrive_of(second))
    assert consumer.applied == [poison.event_id, waiting.event_id]


def test_a_purge_drops_the_dead_letter_for_good_and_hands_on_the_parked_messages(
    consumer: Consumer,
) -> None:
    poison, waiting, also_waiting = (order_completed("o-1") for _ in range(3))
    consumer.failing.add("o-1")
    consumer.consume(consumer.record(poison), consumer.record(waiting))
    consumer.failing.clear()
    consumer.consume(consumer.record(also_waiting))
    [dead] = consumer.dead_letters()

    outcome = consumer.consume(release_of(dead))
    assert outcome.handled == 3  # the control record and the two parked messages
    assert consumer.applied == [waiting.event_id, also_waiting.event_id]
    assert consumer.dead_letter_rows()[poison.event_id][1] == "purged"
    assert consumer.parked() == []
    assert len(consumer.dead_letters()) == 1  # the control record is never dead-lettered

    repeated = consumer.consume(release_of(dead))
    assert (repeated.skipped, repeated.handled) == (1, 0)
    late_redrive = consumer.consume(redrive_of(dead))
    assert late_redrive.handled == 1  # the operator's call: a redrive after a purge applies
    assert consumer.dead_letter_rows()[poison.event_id][1] == "purged"


def test_a_copy_of_the_purged_message_parked_behind_it_is_dropped_with_it(
    consumer: Consumer,
) -> None:
    poison = order_completed("o-1")
    consumer.failing.add("o-1")
    consumer.consume(consumer.record(poison))
    consumer.failing.clear()
    consumer.consume(consumer.record(poison))  # re-published, same event id: parked
    [dead] = consumer.dead_letters()

    outcome = consumer.consume(release_of(dead))
    assert outcome.skipped == 1
    assert consumer.applied == []
    assert consumer.parked() == []


def test_redrives_and_releases_meant_for_another_group_are_skipped(consumer: Consumer) -> None:
    poison, waiting = order_completed("o-1"), order_completed("o-1")
    consumer.failing.add("o-1")
    consumer.consume(consumer.record(poison), consumer.record(waiting))
    consumer.failing.clear()
    [dead] = consumer.dead_letters()

    outcome = consumer.consume(redrive_of(dead, "inventory"), release_of(dead, "inventory"))
    assert (outcome.skipped, outcome.handled, outcome.dead_lettered) == (2, 0, 0)
    assert consumer.applied == []
    assert consumer.dead_letter_rows()[poison.event_id][1] == "blocking"
    assert consumer.parked() == [waiting.event_id]


def test_a_parked_message_that_fails_after_the_release_blocks_the_key_again(
    consumer: Consumer,
) -> None:
    poison, second, third = (order_completed("o-1") for _ in range(3))

    def handle(envelope: Envelope, uow: UnitOfWork) -> None:
        if envelope.event_id == second.event_id or envelope.key in consumer.failing:
            raise RuntimeError("poison")
        record_completion(envelope, uow)
        uow.after_commit(partial(consumer.applied.append, envelope.event_id))

    consumer.processor = BatchProcessor(
        Subscription(("orders.events",), {"OrderCompleted": handle}),
        SCHEMAS,
        consumer.db.unit_of_work,
        GROUP,
    )
    consumer.failing.add("o-1")
    consumer.consume(*(consumer.record(e) for e in (poison, second, third)))
    consumer.failing.clear()
    [dead] = consumer.dead_letters()

    outcome = consumer.consume(redrive_of(dead))
    assert (outcome.handled, outcome.dead_lettered) == (1, 1)
    assert consumer.applied == [poison.event_id]
    assert consumer.parked() == [third.event_id]  # it now waits for `second`
    rows = consumer.dead_letter_rows()
    assert rows[poison.event_id][1] == "released"
    assert rows[second.event_id] == ("o-1", "blocking", 3)


def test_undecodable_bytes_with_a_key_block_it_like_a_failing_handler(
    consumer: Consumer,
) -> None:
    garbage = StoredRecord(
        "orders.events",
        0,
        1,
        b"o-9",
        b"\x00not avro",
        [("event_id", b"e-garbage"), ("event_type", b"OrderCompleted")],
    )
    later = order_completed("o-9")
    outcome = consumer.consume(garbage, consumer.record(later))
    assert (outcome.dead_lettered, outcome.parked) == (1, 1)
    assert consumer.dead_letter_rows() == {"e-garbage": ("o-9", "blocking", 1)}


def test_a_message_without_a_key_is_dead_lettered_and_blocks_nothing(consumer: Consumer) -> None:
    keyless = StoredRecord(
        "orders.events", 2, 5, None, b"junk", [("event_type", b"OrderCompleted")]
    )
    outcome = consumer.consume(keyless)
    assert outcome.dead_lettered == 1
    [dead] = consumer.dead_letters()
    assert dead.message_id == "orders.events:2:5"  # no event id: where it was
    assert consumer.dead_letter_rows() == {}


def test_the_drill_fails_the_named_messages_as_a_bug_would_and_no_other(
    db: SampleDatabase,
) -> None:
    drilled = Consumer(db, drill={("OrderCompleted", "o-7")})
    outcome = drilled.consume(
        drilled.record(order_completed("o-7")), drilled.record(order_completed("o-8"))
    )
    assert (outcome.dead_lettered, outcome.handled) == (1, 1)
    [dead] = drilled.dead_letters()
    assert (dead.headers["dlq.error.type"], dead.headers[HEADER_ATTEMPTS]) == ("DrillFailure", "3")
    assert "DRILL_FAIL_MESSAGES" in dead.headers["dlq.error.message"]


def test_the_probe_reports_parked_messages_and_blocking_dead_letters(
    consumer: Consumer,
) -> None:
    consumer.failing.update({"o-1", "o-2"})
    consumer.consume(*(consumer.record(order_completed(o)) for o in ("o-1", "o-1", "o-1", "o-2")))
    with consumer.db.sessions() as session:
        parking_probe(SampleBase.metadata)(session)
    assert REGISTRY.get_sample_value("pipeline_parked_messages") == 2
    assert REGISTRY.get_sample_value("pipeline_dead_letters_open") == 2
