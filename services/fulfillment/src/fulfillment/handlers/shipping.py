"""Ship paid orders; the simulated carrier dispatches and delivers after configured delays."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from fulfillment.adapters.carrier import Carrier
from fulfillment.adapters.tables import Shipment, ShippingOrder
from kit.envelope import Envelope
from kit.logs import log_context
from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# The statuses the simulated carrier takes a step from: a cancelled shipment never moves.
_MOVING = ("created", "dispatched")


class ShippingHandlers:
    def __init__(
        self, carrier: Carrier, dispatch_after: timedelta, deliver_after: timedelta
    ) -> None:
        self._carrier = carrier
        self._dispatch_after = dispatch_after
        self._deliver_after = deliver_after

    def on_order_placed(self, envelope: Envelope, uow: UnitOfWork) -> None:
        order = lock_shipping_order(uow, envelope.payload["order_id"])
        order.address = dict(envelope.payload["shipping_address"])
        order.lines = [
            {"sku": line["sku"], "quantity": line["quantity"]} for line in envelope.payload["lines"]
        ]
        self._ship_if_ready(envelope, uow, order)

    def on_payment_captured(self, envelope: Envelope, uow: UnitOfWork) -> None:
        order = lock_shipping_order(uow, envelope.payload["order_id"])
        order.paid = True
        self._ship_if_ready(envelope, uow, order)

    def advance_due_shipments(self, uow: UnitOfWork, limit: int = 500) -> int:
        """Periodic job: take every shipment whose next step is due one step further."""
        now = datetime.now(UTC)
        due = list(
            uow.session.scalars(
                select(Shipment)
                .where(Shipment.next_step_at <= now, Shipment.status.in_(_MOVING))
                .order_by(Shipment.next_step_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for shipment in due:
            # A timer, not a message: its log lines name the order and its trace here.
            with log_context(correlation_id=shipment.order_id, trace_id=shipment.trace_id):
                self._advance(None, uow, shipment, now)
        return len(due)

    def _ship_if_ready(self, cause: Envelope, uow: UnitOfWork, order: ShippingOrder) -> None:
        if not order.ready_to_ship:
            return
        if order.cancelled:
            log.info("order %s is ready to ship but its shipment was cancelled", order.order_id)
            return
        if uow.session.scalar(select(Shipment).where(Shipment.order_id == order.order_id)):
            return  # one shipment per order, however often the events come
        assert order.address is not None
        shipment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"shipment:{order.order_id}"))
        booking = self._carrier.book(shipment_id, order.address, parcels=1)
        now = datetime.now(UTC)
        shipment = Shipment(
            shipment_id=shipment_id,
            order_id=order.order_id,
            carrier=booking.carrier,
            tracking_number=booking.tracking_number,
            status="created",
            created_at=now,
            next_step_at=now + self._dispatch_after,
            trace_id=cause.trace_id,
        )
        uow.session.add(shipment)
        uow.emit(
            cause.caused(
                "ShipmentCreated",
                {
                    "order_id": order.order_id,
                    "shipment_id": shipment_id,
                    "carrier": booking.carrier,
                    "created_at": now,
                },
                producer=uow.service_name,
            )
        )
        log.info("shipment created for order %s: %s", order.order_id, booking.tracking_number)
        self._advance(cause, uow, shipment, now)

    def _advance(
        self, cause: Envelope | None, uow: UnitOfWork, shipment: Shipment, now: datetime
    ) -> None:
        """Every step already due is taken now: with zero delays an order ships in one go."""
        while (
            shipment.next_step_at is not None
            and shipment.next_step_at <= now
            and shipment.status in _MOVING
        ):
            if shipment.status == "created":
                shipment.status, shipment.dispatched_at = "dispatched", now
                shipment.next_step_at = now + self._deliver_after
                _emit(
                    uow,
                    cause,
                    shipment,
                    "ShipmentDispatched",
                    {
                        "order_id": shipment.order_id,
                        "shipment_id": shipment.shipment_id,
                        "carrier": shipment.carrier,
                        "tracking_number": shipment.tracking_number,
                        "dispatched_at": now,
                    },
                )
                log.info("shipment dispatched for order %s", shipment.order_id)
            else:
                shipment.status, shipment.delivered_at = "delivered", now
                shipment.next_step_at = None
                _emit(
                    uow,
                    cause,
                    shipment,
                    "ShipmentDelivered",
                    {
                        "order_id": shipment.order_id,
                        "shipment_id": shipment.shipment_id,
                        "delivered_at": now,
                    },
                )
                log.info("shipment delivered for order %s", shipment.order_id)


def lock_shipping_order(uow: UnitOfWork, order_id: str) -> ShippingOrder:
    """The order's shipping facts, locked (created when this is the first fact to arrive)."""
    # populate_existing: a copy loaded earlier in this transaction may predate the lock.
    order = uow.session.get(ShippingOrder, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        order = ShippingOrder(order_id=order_id, paid=False, cancelled=False)
        uow.session.add(order)
    order.updated_at = datetime.now(UTC)
    return order


def _emit(
    uow: UnitOfWork,
    cause: Envelope | None,
    shipment: Shipment,
    event_type: str,
    payload: dict[str, Any],
) -> None:
    """A reaction is caused by its event; a timer's step continues the shipment's trace."""
    if cause is not None:
        uow.emit(cause.caused(event_type, payload, producer=uow.service_name))
    else:
        uow.emit(
            uow.new_event(
                event_type,
                payload,
                key=shipment.order_id,
                correlation_id=shipment.order_id,
                trace_id=shipment.trace_id,
            )
        )
