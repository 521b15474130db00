"""The only place the orders service is assembled."""

from __future__ import annotations

from kit.consumer import Subscription
from kit.service import ServiceDefinition
from orders import contracts
from orders.adapters.tables import OrdersBase
from orders.entrypoints.api import router
from orders.handlers.catalog import on_catalog_item_updated
from orders.handlers.saga import lock_orders_of_batch, on_order_event

SAGA_EVENTS = (
    "StockReserved",
    "StockReservationFailed",
    "StockReleased",
    "PaymentCaptured",
    "PaymentFailed",
    "ShipmentCreated",
    "ShipmentDispatched",
    "ShipmentDelivered",
    "NotificationSent",
)


def definition() -> ServiceDefinition:
    handlers = {event: on_order_event for event in SAGA_EVENTS}
    handlers["CatalogItemUpdated"] = on_catalog_item_updated
    return ServiceDefinition(
        name="orders",
        title="Order Pipeline — orders gateway and saga",
        metadata=OrdersBase.metadata,
        routes=contracts.PUBLISHES,
        subscription=Subscription(
            contracts.CONSUMES_TOPICS, handlers, prefetch=lock_orders_of_batch
        ),
        routers=[router],
    )
