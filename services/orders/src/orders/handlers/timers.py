"""Time as a saga input: deadlines that passed and acknowledgements that are overdue.

Both are columns of the order (`deadline_at`, `retry_at`), so they survive a restart: a
service that was down simply finds them due when it comes back.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from kit.unit_of_work import UnitOfWork
from orders import metrics
from orders.adapters.tables import Order
from orders.domain.saga import DEADLINE_OF, OrderStatus
from orders.handlers.saga import Saga
from orders.handlers.saga_inputs import feed_deadline, record_deadline


class SagaTimers:
    def __init__(self, saga: Saga, batch: int = 200) -> None:
        self._saga = saga
        self._batch = batch

    def run(self, uow: UnitOfWork) -> int:
        """Periodic job: one pass over what is due now; returns how many orders it moved."""
        now = datetime.now(UTC)
        overdue = self._due(uow, Order.deadline_at, now)
        for order in overdue:
            step = DEADLINE_OF.get(OrderStatus(order.status))
            uow.after_commit(metrics.saga_deadlines.labels(step or "none").inc)
            passed = record_deadline(uow, order, step or "")
            feed_deadline(uow, self._saga, order, passed)
        unacknowledged = self._due(uow, Order.retry_at, now)
        for order in unacknowledged:
            self._saga.resend_unacknowledged(uow, order, now)
        return len(overdue) + len(unacknowledged)

    def _due(
        self, uow: UnitOfWork, column: InstrumentedAttribute[datetime | None], now: datetime
    ) -> list[Order]:
        return list(
            uow.session.scalars(
                select(Order)
                .where(column <= now)
                .order_by(column)
                .limit(self._batch)
                # Orders a consumer batch holds are skipped: due again at the next pass.
                .with_for_update(skip_locked=True)
            )
        )
