"""The only place the fulfillment service is assembled."""

from __future__ import annotations

from datetime import timedelta

from fulfillment import contracts
from fulfillment.adapters.carrier import Carrier, SimulatedCarrier
from fulfillment.adapters.tables import FulfillmentBase
from fulfillment.handlers.shipping import ShippingHandlers
from fulfillment.settings import FulfillmentSettings
from kit.consumer import Subscription
from kit.service import PeriodicJob, ServiceDefinition


def definition(settings: FulfillmentSettings, carrier: Carrier | None = None) -> ServiceDefinition:
    shipping = ShippingHandlers(
        carrier or SimulatedCarrier(),
        dispatch_after=timedelta(seconds=settings.dispatch_delay_s),
        deliver_after=timedelta(seconds=settings.delivery_delay_s),
    )
    return ServiceDefinition(
        name="fulfillment",
        title="Order Pipeline — fulfillment",
        metadata=FulfillmentBase.metadata,
        routes=contracts.PUBLISHES,
        subscription=Subscription(
            contracts.CONSUMES_TOPICS,
            {
                "OrderPlaced": shipping.on_order_placed,
                "PaymentCaptured": shipping.on_payment_captured,
            },
        ),
        periodic_jobs=[
            PeriodicJob("carrier", settings.carrier_poll_interval_s, shipping.advance_due_shipments)
        ],
    )
