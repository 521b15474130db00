"""Group commit on every database backend: one transaction, each request all-or-nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sample_service import CompletedOrder, SampleDatabase, outbox
from sqlalchemy import func, select

from kit.group_commit import GroupCommitter
from kit.unit_of_work import UnitOfWork


@pytest.fixture
def db(database_url: str) -> Iterator[SampleDatabase]:
    database = SampleDatabase(database_url)
    yield database
    database.engine.dispose()


def store(order_id: str, fail: bool = False):  # type: ignore[no-untyped-def]
    def work(uow: UnitOfWork) -> str:
        uow.session.add(
            CompletedOrder(order_id=order_id, times_seen=1, completed_at=datetime.now(UTC))
        )
        uow.emit(
            uow.new_event(
                "OrderCompleted",
                {"order_id": order_id, "completed_at": datetime.now(UTC)},
                key=order_id,
                correlation_id=order_id,
            )
        )
        if fail:
            raise ValueError(f"{order_id} refused")
        return order_id

    return work


async def test_concurrent_requests_are_committed_together_and_a_failure_stays_alone(
    db: SampleDatabase,
) -> None:
    committer = GroupCommitter(db.unit_of_work, max_batch=50)
    worker = asyncio.create_task(committer.run())
    try:
        results = await asyncio.gather(
            *(committer.submit(store(f"o-{n}", fail=n == 7)) for n in range(40)),
            return_exceptions=True,
        )
    finally:
        worker.cancel()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert [str(f) for f in failures] == ["o-7 refused"]
    with db.engine.connect() as connection:
        stored = set(connection.execute(select(CompletedOrder.order_id)).scalars())
        staged = connection.execute(select(func.count()).select_from(outbox)).scalar_one()
    assert stored == {f"o-{n}" for n in range(40)} - {"o-7"}
    assert staged == 39  # the refused request's event was rewound with its savepoint
    assert len(db.notified) < 40  # fewer commits than requests: they were grouped


async def test_a_commit_that_fails_is_reported_to_everyone_and_never_re_run(
    db: SampleDatabase,
) -> None:
    class CommitThenFail(UnitOfWork):
        def commit(self) -> None:
            super().commit()
            raise ConnectionError("connection lost after COMMIT")

    runs: list[str] = []

    def counted(order_id: str):  # type: ignore[no-untyped-def]
        def work(uow: UnitOfWork) -> str:
            runs.append(order_id)
            return str(store(order_id)(uow))

        return work

    committer = GroupCommitter(lambda: db.unit_of_work(CommitThenFail), max_batch=50)
    worker = asyncio.create_task(committer.run())
    try:
        results = await asyncio.gather(
            *(committer.submit(counted(f"c-{n}")) for n in range(10)), return_exceptions=True
        )
    finally:
        worker.cancel()
    assert all(isinstance(r, ConnectionError) for r in results)
    assert sorted(runs) == sorted(f"c-{n}" for n in range(10))  # each ran once: no re-run
    with db.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(CompletedOrder)).scalar_one()
    assert stored == 10
