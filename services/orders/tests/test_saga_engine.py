"""The saga engine on real databases: inputs in, order rows and outbox messages out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kit.envelope import Envelope
from kit.testing.service_harness import ServiceHarness
from kit.unit_of_work import UnitOfWork
from orders.adapters.tables import CatalogItem, Order
from orders.bootstrap import definition
from orders.domain.pricing import ShippingPolicy
from orders.domain.returns import ReturnLine, refund_id_for_cancellation, refund_id_for_return
from orders.handlers.customer_requests import (
    OrderNotFoundError,
    RequestRefusedError,
    request_cancellation,
    request_return,
)
from orders.handlers.placing import place_order
from orders.handlers.saga import Saga, backoff, lock_orders_of_batch
from orders.handlers.timers import SagaTimers
from orders.settings import OrdersSettings
from orders.testing import place_command

MUG_PRICE, SHIPPING = 1200, 499
CLIENT = "storefront-1"


class Harness(ServiceHarness):
    def __init__(self, database_url: str, **settings: Any) -> None:
        self.settings = OrdersSettings(database_url=database_url, **settings)
        super().__init__(self.settings, definition(self.settings))
        self.saga = Saga(self.settings)
        self.run(
            lambda uow: uow.session.add(
                CatalogItem(
                    sku="MUG",
                    name="Mug",
                    unit_price=MUG_PRICE,
                    currency="EUR",
                    active=True,
                    updated_at=datetime.now(UTC),
                )
            )
        )

    def place(self, quantity: int = 2) -> str:
        command = place_command(f"o-{datetime.now(UTC).timestamp()}", quantity, client_id=CLIENT)
        policy = ShippingPolicy(SHIPPING, 100_000)
        order = self.run(
            lambda uow: place_order(uow, command, policy, self.settings.stock_deadline)
        )
        return order.order_id

    def feed(self, order_id: str, event_type: str, **payload: Any) -> None:
        envelope = Envelope(event_type, order_id, {"order_id": order_id, **payload}, order_id)

        def handle(uow: UnitOfWork) -> None:
            lock_orders_of_batch([envelope], uow)
            self.saga.on_order_event(envelope, uow)

        self.run(handle)

    def order(self, order_id: str) -> Order:
        with self.session() as session:
            order = session.get(Order, order_id)
            assert order is not None
            _ = order.returns
            return order

    def sent(self, order_id: str) -> list[str]:
        """The saga's messages for this order, in the order they were staged."""
        return [t for t, payload in self.emitted() if payload["order_id"] == order_id]


@pytest.fixture
def harness(database_url: str) -> Iterator[Harness]:
    h = Harness(database_url)
    yield h
    h.close()


def deliver(h: Harness, order_id: str) -> None:
    h.feed(order_id, "StockReserved")
    h.feed(order_id, "PaymentCaptured", payment_id="p-1")
    h.feed(order_id, "ShipmentCreated", shipment_id="s-1", carrier="sim")
    h.feed(order_id, "ShipmentDispatched", tracking_number="T1", dispatched_at=datetime.now(UTC))
    h.feed(order_id, "ShipmentDelivered")


def test_a_paid_order_cancelled_stops_the_shipment_then_refunds_and_releases(
    harness: Harness,
) -> None:
    h = harness
    order_id = h.place()
    h.feed(order_id, "StockReserved")
    h.feed(order_id, "PaymentCaptured", payment_id="p-1")
    h.run(lambda uow: request_cancellation(uow, h.saga, CLIENT, order_id))
    order = h.order(order_id)
    assert (order.status, order.awaiting) == ("COMPENSATING", {"ShipmentCancelled": ""})
    assert h.sent(order_id)[-1] == "CancelShipment"

    h.feed(order_id, "ShipmentCancelled", shipment_id=None)
    assert h.sent(order_id)[-2:] == ["ReleaseStock", "RefundPayment"]
    assert set(h.order(order_id).awaiting) == {"StockReleased", "PaymentRefunded"}

    total = 2 * MUG_PRICE + SHIPPING
    h.feed(order_id, "StockReleased", lines=[])
    h.feed(
        order_id, "PaymentRefunded", refund_id=refund_id_for_cancellation(order_id), amount=total
    )
    order = h.order(order_id)
    assert (order.status, order.cancel_reason, order.refunded) == (
        "CANCELLED",
        "customer_cancelled",
        total,
    )
    assert (order.awaiting, order.retry_at) == ({}, None)
    assert h.sent(order_id)[-1] == "OrderCancelled"


def test_a_dispatched_order_cannot_be_cancelled(harness: Harness) -> None:
    h = harness
    order_id = h.place()
    h.feed(order_id, "PaymentCaptured", payment_id="p-1")
    h.feed(order_id, "ShipmentDispatched", tracking_number="T1", dispatched_at=datetime.now(UTC))
    with pytest.raises(RequestRefusedError) as refused:
        h.run(lambda uow: request_cancellation(uow, h.saga, CLIENT, order_id))
    assert refused.value.kind == "cancel-too-late"
    assert "returns" in refused.value.detail
    assert h.order(order_id).status == "FULFILLING"


def test_a_missed_payment_deadline_compensates_and_the_timer_resends_with_backoff(
    database_url: str,
) -> None:
    h = Harness(
        database_url,
        payment_deadline=timedelta(0),
        compensation_retry_initial=timedelta(minutes=1),
        compensation_retry_max=timedelta(hours=1),
    )
    order_id = h.place()
    h.feed(order_id, "StockReserved")
    timers = SagaTimers(h.saga)
    h.run(timers.run)
    order = h.order(order_id)
    assert (order.status, order.cancel_reason) == ("COMPENSATING", "payment_deadline_exceeded")
    assert order.deadline_at is None

    assert order.retry_at is not None
    assert order.retry_at - datetime.now(UTC) > timedelta(seconds=50)  # the initial pause

    def first_pause_over(uow: Any) -> None:  # time travel: the minute has passed
        uow.session.get(Order, order_id).retry_at = datetime.now(UTC) - timedelta(seconds=1)

    h.run(first_pause_over)
    h.run(timers.run)
    order = h.order(order_id)
    assert h.sent(order_id).count("CancelShipment") == 2
    assert order.retry_attempts == 1
    assert order.retry_at is not None
    assert order.retry_at - datetime.now(UTC) > timedelta(seconds=110)  # doubled
    h.close()


def test_a_partial_return_refunds_its_lines_and_the_last_return_adds_shipping(
    harness: Harness,
) -> None:
    h = harness
    order_id = h.place(quantity=3)
    deliver(h, order_id)
    assert h.order(order_id).status == "COMPLETED"

    def return_and_complete(quantity: int) -> int:
        order_return = h.run(
            lambda uow: request_return(
                uow, h.saga, CLIENT, order_id, [ReturnLine("MUG", quantity)], "x"
            )
        )
        rid = order_return.return_id
        assert h.sent(order_id)[-2:] == ["ReturnRequested", "IssueReturnLabel"]
        h.feed(order_id, "ReturnLabelIssued", return_id=rid, carrier="sim", label_reference="L1")
        assert h.order(order_id).returns[-1].label_reference == "L1"
        lines = [{"sku": "MUG", "quantity": quantity}]
        h.feed(order_id, "ReturnReceived", return_id=rid, lines=lines)
        assert h.order(order_id).status == "RETURNING"
        assert h.sent(order_id)[-2:] == ["RestockItems", "RefundPayment"]
        refund = h.order(order_id).returns[-1].refund_amount
        assert refund is not None
        h.feed(order_id, "StockRestocked", return_id=rid, lines=lines)
        h.feed(order_id, "PaymentRefunded", refund_id=refund_id_for_return(rid), amount=refund)
        assert h.order(order_id).status == "RETURNED"
        assert h.sent(order_id)[-1] == "OrderReturned"
        return refund

    assert return_and_complete(1) == MUG_PRICE
    assert return_and_complete(2) == 2 * MUG_PRICE + SHIPPING
    assert h.order(order_id).refunded == 3 * MUG_PRICE + SHIPPING
    with pytest.raises(ValueError, match="can still be returned"):
        h.run(
            lambda uow: request_return(uow, h.saga, CLIENT, order_id, [ReturnLine("MUG", 1)], "x")
        )


def test_returns_are_refused_before_delivery_during_another_return_and_after_the_window(
    database_url: str,
) -> None:
    h = Harness(database_url, return_window=timedelta(0))
    order_id = h.place()

    def kind_of_refusal() -> str:
        with pytest.raises(RequestRefusedError) as refused:
            h.run(
                lambda uow: request_return(
                    uow, h.saga, CLIENT, order_id, [ReturnLine("MUG", 1)], "x"
                )
            )
        return refused.value.kind

    assert kind_of_refusal() == "order-not-delivered"
    deliver(h, order_id)
    assert kind_of_refusal() == "return-window-closed"
    h.close()


def test_backoff_doubles_up_to_its_cap() -> None:
    pauses = [backoff(n, timedelta(seconds=5), timedelta(seconds=60)) for n in range(6)]
    assert [p.total_seconds() for p in pauses] == [5, 10, 20, 40, 60, 60]


def test_another_clients_order_is_not_found(harness: Harness) -> None:
    h = harness
    order_id = h.place()
    with pytest.raises(OrderNotFoundError):
        h.run(lambda uow: request_cancellation(uow, h.saga, "someone-else", order_id))
    assert h.order(order_id).status == "PENDING"


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_each_transition_compensation_and_settlement_once(harness: Harness) -> None:
    h = harness
    before = {
        "pending": metric("saga_state_duration_seconds_count", state="PENDING"),
        "compensations": metric("saga_compensations_total", reason="customer_cancelled"),
        "cancelled": metric("orders_cancelled_total", reason="customer_cancelled"),
        "placed": metric("orders_placed_total"),
        "revenue": metric("orders_revenue_amount_total", currency="EUR"),
    }
    cancelled, delivered = h.place(), h.place(quantity=1)
    h.run(lambda uow: request_cancellation(uow, h.saga, CLIENT, cancelled))
    h.feed(cancelled, "ShipmentCancelled", shipment_id=None)
    h.feed(cancelled, "StockReleased", lines=[])
    h.feed(cancelled, "PaymentRefunded", refund_id=refund_id_for_cancellation(cancelled), amount=0)
    deliver(h, delivered)
    h.feed(delivered, "ShipmentDelivered")  # a repeat: ignored, counted as ignored only
    assert h.order(cancelled).status == "CANCELLED"
    assert h.order(delivered).status == "COMPLETED"

    assert metric("orders_placed_total") - before["placed"] == 2
    # Both left PENDING once (the cancelled one for COMPENSATING, the other for RESERVED).
    assert metric("saga_state_duration_seconds_count", state="PENDING") - before["pending"] == 2
    assert (
        metric("saga_compensations_total", reason="customer_cancelled") - before["compensations"]
        == 1
    )
    assert metric("orders_cancelled_total", reason="customer_cancelled") - before["cancelled"] == 1
    revenue = metric("orders_revenue_amount_total", currency="EUR") - before["revenue"]
    assert revenue == pytest.approx((MUG_PRICE + SHIPPING) / 100)
