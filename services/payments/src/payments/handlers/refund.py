"""Refund (part of) what was captured; if nothing was, void the order so nothing ever is."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kit.envelope import Envelope
from kit.metrics import major_units
from kit.unit_of_work import UnitOfWork
from payments import metrics
from payments.adapters.psp import PaymentProvider
from payments.adapters.tables import Payment, PaymentIntent, Refund
from payments.handlers.intents import lock_intent, payment_id_for

log = logging.getLogger(__name__)


class RefundHandlers:
    def __init__(self, provider: PaymentProvider) -> None:
        self._provider = provider

    def on_refund_payment(self, envelope: Envelope, uow: UnitOfWork) -> None:
        command = envelope.payload
        # Locked before the refund is looked up: a repeat racing its original waits here and
        # then finds the refund made, and a capture of the same order waits too.
        intent = lock_intent(uow, command["order_id"])
        refund = uow.session.get(Refund, command["refund_id"])
        if refund is None:
            refund = self._refund(uow, intent, command)
            log.info(
                "payment refunded for order %s: %.2f %s (refund %s)",
                refund.order_id,
                major_units(refund.amount),
                refund.currency,
                refund.refund_id,
            )
        # A repeated command (the saga re-sends it until it sees this answer) refunds nothing
        # and is answered from the record, so every answer for one refund says the same.
        uow.emit(
            envelope.caused(
                "PaymentRefunded",
                {
                    "order_id": refund.order_id,
                    "refund_id": refund.refund_id,
                    "payment_id": refund.payment_id,
                    "amount": refund.amount,
                    "currency": refund.currency,
                    "refunded_at": refund.created_at,
                },
                producer=uow.service_name,
            )
        )

    def _refund(self, uow: UnitOfWork, intent: PaymentIntent, command: Mapping[str, Any]) -> Refund:
        payment = uow.session.scalar(
            select(Payment).where(Payment.order_id == intent.order_id).with_for_update()
        )
        refund = Refund(
            refund_id=command["refund_id"],
            order_id=intent.order_id,
            payment_id=payment_id_for(intent.order_id),
            amount=0,
            currency=command["currency"],
            reason=command["reason"],
            created_at=datetime.now(UTC),
        )
        if payment is None or payment.status != "captured":
            if not intent.voided:
                log.info(
                    "order %s refunded before any capture: voided, it will never be captured",
                    intent.order_id,
                )
            intent.voided = True
        else:
            refund.currency = payment.currency
            refund.amount = self._refund_captured(payment, command)
            if refund.amount > 0:
                result = self._provider.refund(
                    idempotency_key=refund.refund_id,
                    provider_reference=payment.provider_reference or "",
                    amount=refund.amount,
                    currency=payment.currency,
                )
                refund.provider_reference = result.provider_reference
                payment.refunded_amount += refund.amount
        uow.session.add(refund)
        refunded = major_units(refund.amount)
        currency_counter = metrics.refunded_amount.labels(refund.currency)
        uow.after_commit(metrics.refunds.inc)
        uow.after_commit(lambda: currency_counter.inc(refunded))
        return refund

    @staticmethod
    def _refund_captured(payment: Payment, command: Mapping[str, Any]) -> int:
        """How much of the request can still be refunded: never more than is left captured."""
        requested: int = command["amount"]
        left = payment.amount - payment.refunded_amount
        amount = max(0, min(requested, left))
        if amount < requested:
            log.warning(
                "refund %s of order %s asks for %d, only %d of the capture is left: refunding %d",
                command["refund_id"],
                payment.order_id,
                requested,
                left,
                amount,
            )
        if command["currency"] != payment.currency:
            log.warning(
                "refund %s of order %s is in %s but the payment was in %s: refunding in %s",
                command["refund_id"],
                payment.order_id,
                command["currency"],
                payment.currency,
                payment.currency,
            )
        return amount
