"""Group commit: many API requests' writes in one transaction, each still all-or-nothing.

A request submits a function of the unit of work and awaits its result. One worker takes
whatever has queued up (up to `max_batch`), runs each function in its own SAVEPOINT — so a
request that fails rolls back alone — and commits once. Under load that turns N commits
into one; idle, a lone request commits at once (no timer, no added latency).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[UnitOfWork], Any]


class GroupCommitter:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], max_batch: int = 200) -> None:
        self._unit_of_work = unit_of_work
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]]] = asyncio.Queue()

    async def submit(self, work: Callable[[UnitOfWork], T]) -> T:
        """Runs `work` in a shared transaction; returns once that transaction committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((work, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await asyncio.to_thread(self._commit, [work for work, _ in batch])
            except Exception as error:  # the commit itself failed: nobody's write is stored
                log.exception("group commit of %d requests failed", len(batch))
                outcomes = [error] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # the request was cancelled (client went away)
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _commit(self, works: list[Work]) -> list[Any]:
        """Fast path: every request in one transaction, no savepoints. If a request's own
        work fails, roll back and run them again, each in its own savepoint, so only it is
        refused. A failing commit is never re-run: it may have succeeded, and every request
        gets the error instead."""
        with self._unit_of_work() as uow:
            try:
                outcomes = [work(uow) for work in works]
                # A constraint a request broke surfaces here, still as that request's fault:
                # the isolated re-run below then refuses only it.
                uow.session.flush()
            except Exception as error:
                if len(works) == 1:
                    return [error]
                outcomes = None
            if outcomes is not None:
                uow.commit()
                return outcomes
        return self._commit_isolated(works)

    def _commit_isolated(self, works: list[Work]) -> list[Any]:
        outcomes: list[Any] = []
        with self._unit_of_work() as uow:
            for work in works:
                checkpoint = uow.checkpoint()
                savepoint = uow.session.begin_nested()
                try:
                    outcome = work(uow)
                    uow.session.flush()
                except Exception as error:
                    savepoint.rollback()
                    uow.rewind(checkpoint)
                    outcomes.append(error)
                    continue
                savepoint.commit()
                outcomes.append(outcome)
            uow.commit()
        return outcomes
