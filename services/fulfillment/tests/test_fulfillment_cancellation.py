"""CancelShipment on every database: close the door, cancel before dispatch, never after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from fulfillment.adapters.tables import Shipment, ShippingOrder
from fulfillment.testing import Fulfillment, cancel_shipment, payment_captured
from kit.testing.service_harness import order_placed


@pytest.fixture
def fulfillment(database_url: str) -> Iterator[Fulfillment]:
    service = Fulfillment(database_url)
    yield service
    service.close()


@pytest.fixture
def slow_fulfillment(database_url: str) -> Iterator[Fulfillment]:
    """A carrier that dispatches an hour after booking: shipments wait in `created`."""
    service = Fulfillment(database_url, dispatch_delay_s=3600)
    yield service
    service.close()


def shipment_of(service: Fulfillment, order_id: str) -> Shipment | None:
    with service.session() as session:
        return session.scalar(select(Shipment).where(Shipment.order_id == order_id))


def test_a_cancel_before_any_shipping_fact_means_no_shipment_is_ever_created(
    fulfillment: Fulfillment,
) -> None:
    fulfillment.deliver(cancel_shipment("o-1"))
    fulfillment.deliver(order_placed("o-1"))
    fulfillment.deliver(payment_captured("o-1"))

    assert shipment_of(fulfillment, "o-1") is None
    assert [t for t, _ in fulfillment.emitted()] == ["ShipmentCancelled"]
    ((_, ack),) = fulfillment.emitted()
    assert ack == {"order_id": "o-1", "shipment_id": None, "reason": "customer_request"}
    with fulfillment.session() as session:
        order = session.get(ShippingOrder, "o-1")
        assert order is not None
        assert (order.cancelled, order.paid, order.address is not None) == (True, True, True)


def test_a_cancel_in_the_same_batch_before_the_facts_also_closes_the_door(
    fulfillment: Fulfillment,
) -> None:
    fulfillment.deliver(cancel_shipment("o-1"), order_placed("o-1"), payment_captured("o-1"))

    assert shipment_of(fulfillment, "o-1") is None
    assert [t for t, _ in fulfillment.emitted()] == ["ShipmentCancelled"]


def test_a_created_shipment_is_cancelled_and_the_carrier_never_dispatches_it(
    slow_fulfillment: Fulfillment,
) -> None:
    slow_fulfillment.deliver(order_placed("o-1"), payment_captured("o-1"))
    created = shipment_of(slow_fulfillment, "o-1")
    assert created is not None and created.status == "created"

    slow_fulfillment.deliver(cancel_shipment("o-1", reason="payment_declined"))
    slow_fulfillment.make_timers_due()
    moved = slow_fulfillment.run_carrier()

    cancelled = shipment_of(slow_fulfillment, "o-1")
    assert cancelled is not None
    assert (cancelled.status, cancelled.next_step_at, cancelled.dispatched_at) == (
        "cancelled",
        None,
        None,
    )
    assert moved == 0
    assert [t for t, _ in slow_fulfillment.emitted()] == ["ShipmentCreated", "ShipmentCancelled"]
    assert slow_fulfillment.emitted("ShipmentCancelled")[0][1] == {
        "order_id": "o-1",
        "shipment_id": created.shipment_id,
        "reason": "payment_declined",
    }


def test_even_a_stale_timer_never_moves_a_cancelled_shipment(
    slow_fulfillment: Fulfillment,
) -> None:
    slow_fulfillment.deliver(order_placed("o-1"), payment_captured("o-1"))
    slow_fulfillment.deliver(cancel_shipment("o-1"))
    with slow_fulfillment.session() as session, session.begin():
        session.execute(
            update(Shipment).values(next_step_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    assert slow_fulfillment.run_carrier() == 0

    shipment = shipment_of(slow_fulfillment, "o-1")
    assert shipment is not None and shipment.status == "cancelled"
    assert slow_fulfillment.emitted("ShipmentDispatched") == []


def test_the_carrier_still_dispatches_shipments_nobody_cancelled(
    slow_fulfillment: Fulfillment,
) -> None:
    slow_fulfillment.deliver(order_placed("o-1"), payment_captured("o-1"))
    slow_fulfillment.deliver(order_placed("o-2"), payment_captured("o-2"))
    slow_fulfillment.deliver(cancel_shipment("o-1"))
    slow_fulfillment.make_timers_due()

    assert slow_fulfillment.run_carrier() == 1

    dispatched = [p["order_id"] for _, p in slow_fulfillment.emitted("ShipmentDispatched")]
    assert dispatched == ["o-2"]


def test_a_cancel_after_dispatch_is_too_late_and_emits_nothing(
    fulfillment: Fulfillment, caplog: pytest.LogCaptureFixture
) -> None:
    fulfillment.deliver(order_placed("o-1"), payment_captured("o-1"))  # ships at once
    before = fulfillment.emitted()

    with caplog.at_level("INFO", logger="fulfillment.handlers.cancellation"):
        outcome = fulfillment.deliver(cancel_shipment("o-1"))

    assert outcome.handled == 1
    assert fulfillment.emitted() == before
    assert "ShipmentCancelled" not in [t for t, _ in before]
    shipment = shipment_of(fulfillment, "o-1")
    assert shipment is not None and shipment.status == "delivered"
    with fulfillment.session() as session:
        order = session.get(ShippingOrder, "o-1")
        assert order is not None and not order.cancelled
    assert "already delivered" in caplog.text


def test_a_repeated_cancel_is_acknowledged_each_time_but_changes_the_shipment_once(
    slow_fulfillment: Fulfillment,
) -> None:
    slow_fulfillment.deliver(order_placed("o-1"), payment_captured("o-1"))
    slow_fulfillment.deliver(cancel_shipment("o-1"))
    first = shipment_of(slow_fulfillment, "o-1")
    slow_fulfillment.deliver(cancel_shipment("o-1"))  # the saga's retry: a new event id
    second = shipment_of(slow_fulfillment, "o-1")

    acks = [payload for _, payload in slow_fulfillment.emitted("ShipmentCancelled")]
    assert first is not None and second is not None
    assert len(acks) == 2
    assert (
        acks[0]
        == acks[1]
        == {
            "order_id": "o-1",
            "shipment_id": first.shipment_id,
            "reason": "customer_request",
        }
    )
    assert second.cancelled_at == first.cancelled_at  # the retry changed nothing


def test_a_redelivered_cancel_under_the_same_event_id_is_not_acknowledged_again(
    fulfillment: Fulfillment,
) -> None:
    command = cancel_shipment("o-1")
    fulfillment.deliver(command)
    outcome = fulfillment.deliver(command)

    assert outcome.duplicates == 1
    assert len(fulfillment.emitted("ShipmentCancelled")) == 1
