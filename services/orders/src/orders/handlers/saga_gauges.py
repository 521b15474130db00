"""Periodic probe: recount orders by saga state and the ones stuck in a non-terminal state.

Gauges, not counters, because they are facts about the table: a restarted service reports
the right numbers at once, and nothing drifts when a transaction rolls back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orders import metrics
from orders.adapters.tables import Order
from orders.domain.saga import TERMINAL, OrderStatus


class SagaGauges:
    def __init__(self, stuck_after: timedelta) -> None:
        self._stuck_after = stuck_after

    def run(self, session: Session) -> None:
        by_state = _count_by_state(session)
        stuck = _count_by_state(
            session,
            Order.status.not_in([str(state) for state in TERMINAL]),
            Order.status_since < datetime.now(UTC) - self._stuck_after,
        )
        for state in OrderStatus:  # every state, so a state that empties shows 0, not a gap
            metrics.saga_orders.labels(state).set(by_state.get(state, 0))
            if state not in TERMINAL:
                metrics.saga_stuck_orders.labels(state).set(stuck.get(state, 0))


def _count_by_state(session: Session, *conditions: Any) -> dict[str, int]:
    query = select(Order.status, func.count()).where(*conditions).group_by(Order.status)
    return {status: count for status, count in session.execute(query)}
