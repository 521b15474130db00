"""Orders by state and stuck orders, recounted from the table on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from orders.domain.saga import OrderStatus
from orders.handlers.saga_gauges import SagaGauges
from orders.testing import GatewayHarness, new_order


def gauge(name: str, state: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"state": state})


def aged(status: OrderStatus, age: timedelta) -> object:
    order = new_order(status=status)
    order.status_since = datetime.now(UTC) - age
    return order


def test_orders_are_counted_by_state_and_stuck_only_when_old_and_not_at_rest(
    database_url: str,
) -> None:
    with GatewayHarness(database_url) as harness:
        harness.add(
            aged(OrderStatus.PAID, timedelta(hours=2)),  # stuck
            aged(OrderStatus.PAID, timedelta(seconds=5)),  # just arrived
            aged(OrderStatus.COMPENSATING, timedelta(hours=1)),  # stuck
            aged(OrderStatus.COMPLETED, timedelta(days=3)),  # at rest, never stuck
        )
        with harness.reads() as session:
            SagaGauges(stuck_after=timedelta(minutes=15)).run(session)
    assert gauge("saga_orders", "PAID") == 2
    assert gauge("saga_orders", "COMPLETED") == 1
    assert gauge("saga_orders", "RETURNING") == 0  # empty states are 0, not missing
    assert gauge("saga_stuck_orders", "PAID") == 1
    assert gauge("saga_stuck_orders", "COMPENSATING") == 1
    assert gauge("saga_stuck_orders", "PENDING") == 0
    assert gauge("saga_stuck_orders", "COMPLETED") is None  # terminal states are never stuck
