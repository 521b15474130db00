"""CancelShipment: stop an order's shipment while it is still in the warehouse.

The command is retried until acknowledged and may arrive before the order's shipping facts,
so it first closes the door (the order is marked cancelled: no shipment is created later),
then acknowledges with ShipmentCancelled as often as it is asked.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from fulfillment import metrics
from fulfillment.adapters.tables import Shipment
from fulfillment.handlers.shipping import lock_shipping_order
from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def cancel_shipment(envelope: Envelope, uow: UnitOfWork) -> None:
    order_id, reason = envelope.payload["order_id"], envelope.payload["reason"]
    # The order row first, then the shipment: the same lock order as the shipping handlers.
    order = lock_shipping_order(uow, order_id)
    shipment = uow.session.scalar(
        select(Shipment)
        .where(Shipment.order_id == order_id)
        .with_for_update()
        # The carrier's timer may have moved it since this transaction last looked.
        .execution_options(populate_existing=True)
    )
    if shipment is not None and shipment.status not in ("created", "cancelled"):
        # Nothing to acknowledge: the ShipmentDispatched already ahead of any reply in
        # fulfillment.events tells the saga the parcel has left.
        log.info(
            "not cancelling order %s: its shipment %s is already %s",
            order_id,
            shipment.shipment_id,
            shipment.status,
        )
        return
    order.cancelled = True
    if shipment is not None and shipment.status == "created":
        shipment.status, shipment.cancelled_at = "cancelled", datetime.now(UTC)
        shipment.next_step_at = None  # the carrier's timer never picks it up again
        uow.after_commit(metrics.shipments.labels("cancelled").inc)
    uow.emit(
        envelope.caused(
            "ShipmentCancelled",
            {
                "order_id": order_id,
                "shipment_id": shipment.shipment_id if shipment is not None else None,
                "reason": reason,
            },
            producer=uow.service_name,
        )
    )
    log.info("shipping cancelled for order %s: %s", order_id, reason)
