"""The only place the fulfillment service is assembled."""

from __future__ import annotations

from datetime import timedelta

from fulfillment import contracts
from fulfillment import metrics as fulfillment_metrics
from fulfillment.adapters.carrier import Carrier, SimulatedCarrier
from fulfillment.adapters.tables import FulfillmentBase
from fulfillment.entrypoints.api import router
from fulfillment.handlers.cancellation import cancel_shipment
from fulfillment.handlers.returns import ReturnHandlers
from fulfillment.handlers.shipping import ShippingHandlers
from fulfillment.settings import FulfillmentSettings
from kit.consumer import Subscription
from kit.service import PeriodicJob, ServiceDefinition


def definition(settings: FulfillmentSettings, carrier: Carrier | None = None) -> ServiceDefinition:
    carrier = carrier or SimulatedCarrier()
    shipping = ShippingHandlers(
        carrier,
        dispatch_after=timedelta(seconds=settings.dispatch_delay_s),
        deliver_after=timedelta(seconds=settings.delivery_delay_s),
    )
    returns = ReturnHandlers(carrier)
    fulfillment_metrics.initialize()
    return ServiceDefinition(
        name="fulfillment",
        count_emitted=fulfillment_metrics.count_emitted,
        title="Order Pipeline — fulfillment",
        metadata=FulfillmentBase.metadata,
        routes=contracts.PUBLISHES,
        subscription=Subscription(
            contracts.CONSUMES_TOPICS,
            {
                "OrderPlaced": shipping.on_order_placed,
                "PaymentCaptured": shipping.on_payment_captured,
                "CancelShipment": cancel_shipment,
                "IssueReturnLabel": returns.on_issue_return_label,
            },
        ),
        routers=[router],
        periodic_jobs=[
            PeriodicJob("carrier", settings.carrier_poll_interval_s, shipping.advance_due_shipments)
        ],
    )
