"""The only place the notifications service is assembled."""

from __future__ import annotations

from kit.consumer import Subscription
from kit.service import ServiceDefinition
from notifications import contracts
from notifications import metrics as notifications_metrics
from notifications.adapters.channels import Channel, RecordOnlyEmail
from notifications.adapters.tables import NotificationsBase
from notifications.handlers.notify import NotificationHandlers


def definition(channel: Channel | None = None) -> ServiceDefinition:
    notify = NotificationHandlers(channel or RecordOnlyEmail())
    return ServiceDefinition(
        name="notifications",
        count_emitted=notifications_metrics.count_emitted,
        title="Order Pipeline — notifications",
        metadata=NotificationsBase.metadata,
        routes=contracts.PUBLISHES,
        subscription=Subscription(
            contracts.CONSUMES_TOPICS,
            {
                "OrderPlaced": notify.on_order_placed,
                "ShipmentDispatched": notify.on_shipment_dispatched,
                "OrderCancelled": notify.on_order_cancelled,
                "ReturnLabelIssued": notify.on_return_label_issued,
                "ReturnReceived": notify.on_return_received,
                "PaymentRefunded": notify.on_payment_refunded,
            },
        ),
    )
