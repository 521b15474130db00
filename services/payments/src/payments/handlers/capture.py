"""Capture once an order is both placed (amount, token) and reserved (stock held)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork
from payments.adapters.psp import PaymentProvider
from payments.adapters.tables import Payment, PaymentIntent
from payments.handlers.intents import lock_intent, payment_id_for

log = logging.getLogger(__name__)


class CaptureHandlers:
    def __init__(self, provider: PaymentProvider) -> None:
        self._provider = provider

    def on_order_placed(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        intent = lock_intent(uow, payload["order_id"])
        intent.customer_id = payload["customer_id"]
        intent.amount = payload["total"]
        intent.currency = payload["currency"]
        intent.payment_token = payload["payment_token"]
        self._capture_if_ready(envelope, uow, intent)

    def on_stock_reserved(self, envelope: Envelope, uow: UnitOfWork) -> None:
        intent = lock_intent(uow, envelope.payload["order_id"])
        intent.stock_reserved = True
        self._capture_if_ready(envelope, uow, intent)

    def _capture_if_ready(self, cause: Envelope, uow: UnitOfWork, intent: PaymentIntent) -> None:
        if intent.voided:
            log.info("order %s was refunded before it was captured: not capturing", intent.order_id)
            return
        if not intent.ready_to_capture:
            return
        already = uow.session.scalar(select(Payment).where(Payment.order_id == intent.order_id))
        if already is not None:
            return  # never capture twice for one order
        assert intent.amount is not None and intent.currency and intent.payment_token
        payment_id = payment_id_for(intent.order_id)
        result = self._provider.capture(
            idempotency_key=payment_id,
            token=intent.payment_token,
            amount=intent.amount,
            currency=intent.currency,
        )
        now = datetime.now(UTC)
        uow.session.add(
            Payment(
                payment_id=payment_id,
                order_id=intent.order_id,
                amount=intent.amount,
                currency=intent.currency,
                status="captured" if result.approved else "failed",
                provider_reference=result.provider_reference or None,
                failure_reason=result.failure_reason or None,
                created_at=now,
            )
        )
        if result.approved:
            uow.emit(
                cause.caused(
                    "PaymentCaptured",
                    {
                        "order_id": intent.order_id,
                        "payment_id": payment_id,
                        "amount": intent.amount,
                        "currency": intent.currency,
                        "provider_reference": result.provider_reference,
                        "captured_at": now,
                    },
                    producer=uow.service_name,
                )
            )
            log.info("payment captured for order %s: %s", intent.order_id, payment_id)
        else:
            uow.emit(
                cause.caused(
                    "PaymentFailed",
                    {
                        "order_id": intent.order_id,
                        "payment_id": payment_id,
                        "reason": result.failure_reason,
                        "detail": result.detail,
                    },
                    producer=uow.service_name,
                )
            )
            log.info("payment failed for order %s: %s", intent.order_id, result.failure_reason)
