"""The per-order intent that capture and refund lock, and the payment id an order gets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from kit.unit_of_work import UnitOfWork
from payments.adapters.tables import PaymentIntent


def payment_id_for(order_id: str) -> str:
    """Deterministic: a retried capture reuses the provider's idempotency key, and a refund
    that finds nothing captured still names the payment that will never be."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"payment:{order_id}"))


def lock_intent(uow: UnitOfWork, order_id: str) -> PaymentIntent:
    """The order's intent, locked (created by whichever message comes first), so that one
    order's capture and refunds take turns."""
    intent = uow.session.get(PaymentIntent, order_id, with_for_update=True)
    if intent is None:
        intent = PaymentIntent(order_id=order_id, stock_reserved=False, voided=False)
        uow.session.add(intent)
    intent.updated_at = datetime.now(UTC)
    return intent
