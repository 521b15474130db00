"""The only place the orders service is assembled."""

from __future__ import annotations

from kit.consumer import Subscription
from kit.service import PeriodicJob, PeriodicProbe, ServiceDefinition
from orders import contracts, metrics
from orders.adapters.idempotency_store import purge_expired
from orders.adapters.tables import OrdersBase
from orders.domain.saga import ACKNOWLEDGED_BY, OrderStatus, Step
from orders.entrypoints.api import router
from orders.entrypoints.limits import BodySizeLimit
from orders.handlers.catalog import on_catalog_item_updated
from orders.handlers.saga import Saga, lock_orders_of_batch
from orders.handlers.saga_gauges import SagaGauges
from orders.handlers.timers import SagaTimers
from orders.settings import OrdersSettings

SAGA_EVENTS = (
    "StockReserved",
    "StockReservationFailed",
    "StockReleased",
    "StockRestocked",
    "PaymentCaptured",
    "PaymentFailed",
    "PaymentRefunded",
    "ShipmentCreated",
    "ShipmentDispatched",
    "ShipmentDelivered",
    "ShipmentCancelled",
    "ReturnLabelIssued",
    "ReturnReceived",
    "NotificationSent",
)


def definition(settings: OrdersSettings) -> ServiceDefinition:
    saga = Saga(settings)
    handlers = {event: saga.on_order_event for event in SAGA_EVENTS}
    handlers["CatalogItemUpdated"] = on_catalog_item_updated
    metrics.initialize(
        states=tuple(OrderStatus),
        steps=tuple(Step),
        commands=tuple(ACKNOWLEDGED_BY),
        inputs=tuple(SAGA_EVENTS),
    )
    return ServiceDefinition(
        name="orders",
        title="Order Pipeline — orders gateway and saga",
        metadata=OrdersBase.metadata,
        routes=contracts.PUBLISHES,
        subscription=Subscription(
            contracts.CONSUMES_TOPICS, handlers, prefetch=lock_orders_of_batch
        ),
        routers=[router],
        periodic_jobs=[
            PeriodicJob("saga timers", settings.saga_timer_interval_s, SagaTimers(saga).run),
            PeriodicJob("idempotency purge", settings.idempotency_purge_interval_s, purge_expired),
        ],
        probes=[
            PeriodicProbe(
                "saga gauges",
                settings.saga_gauges_interval_s,
                SagaGauges(settings.stuck_order_age).run,
            ),
        ],
        watches_dead_letters=True,
        configure_app=lambda app: app.add_middleware(
            BodySizeLimit, max_bytes=settings.max_body_bytes
        ),
    )
