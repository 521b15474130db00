"""The only place the payments service is assembled."""

from __future__ import annotations

from kit.consumer import Subscription
from kit.service import ServiceDefinition
from payments import contracts
from payments import metrics as payments_metrics
from payments.adapters.psp import FAILURE_REASONS, PaymentProvider, SimulatedProvider
from payments.adapters.tables import PaymentsBase
from payments.handlers.capture import CaptureHandlers
from payments.handlers.refund import RefundHandlers


def definition(provider: PaymentProvider | None = None) -> ServiceDefinition:
    provider = provider or SimulatedProvider()
    capture = CaptureHandlers(provider)
    refund = RefundHandlers(provider)
    payments_metrics.initialize(FAILURE_REASONS)
    return ServiceDefinition(
        name="payments",
        count_emitted=payments_metrics.count_emitted,
        title="Order Pipeline — payments",
        metadata=PaymentsBase.metadata,
        routes=contracts.PUBLISHES,
        subscription=Subscription(
            contracts.CONSUMES_TOPICS,
            {
                "OrderPlaced": capture.on_order_placed,
                "StockReserved": capture.on_stock_reserved,
                "RefundPayment": refund.on_refund_payment,
            },
        ),
    )
