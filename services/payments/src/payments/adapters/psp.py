"""The payment-provider port and its built-in simulated provider.

The simulator decides by the payment-method token, the way card networks' test cards do,
so every outcome can be produced on purpose:

| token                                | outcome                                   |
|--------------------------------------|-------------------------------------------|
| tok_visa, tok_mastercard, tok_amex   | approved                                  |
| tok_chargeDeclined                   | declined (reason `declined`)              |
| tok_chargeDeclinedInsufficientFunds  | declined (reason `insufficient_funds`)    |
| tok_processingError                  | provider error (reason `provider_error`)  |
| tok_timeout                          | no answer (reason `provider_timeout`)     |
| tok_fraudulent                       | fraud rejection (reason `fraud_rejected`) |
| anything else starting with tok_     | approved                                  |
| anything else                        | declined (reason `declined`)              |

Refunds of a captured payment always succeed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CaptureResult:
    approved: bool
    provider_reference: str = ""
    failure_reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class RefundResult:
    provider_reference: str


class PaymentProvider(Protocol):
    def capture(
        self, *, idempotency_key: str, token: str, amount: int, currency: str
    ) -> CaptureResult:
        """Capture `amount`; the same idempotency key never captures twice at the provider."""
        ...

    def refund(
        self, *, idempotency_key: str, provider_reference: str, amount: int, currency: str
    ) -> RefundResult:
        """Refund `amount` of the capture `provider_reference`; raises if the provider refuses.

        The same idempotency key never refunds twice at the provider.
        """
        ...


_FAILURES = {
    "tok_chargeDeclined": ("declined", "Your card was declined."),
    "tok_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Insufficient funds."),
    "tok_processingError": ("provider_error", "The provider failed to process the payment."),
    "tok_timeout": ("provider_timeout", "The provider did not answer in time."),
    "tok_fraudulent": ("fraud_rejected", "The payment was rejected as likely fraud."),
}
FAILURE_REASONS = tuple(reason for reason, _ in _FAILURES.values())


class SimulatedProvider:
    def capture(
        self, *, idempotency_key: str, token: str, amount: int, currency: str
    ) -> CaptureResult:
        if token in _FAILURES:
            reason, detail = _FAILURES[token]
            return CaptureResult(False, failure_reason=reason, detail=detail)
        if not token.startswith("tok_"):
            return CaptureResult(False, failure_reason="declined", detail="Unknown payment method.")
        reference = "sim_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
        return CaptureResult(True, provider_reference=reference)

    def refund(
        self, *, idempotency_key: str, provider_reference: str, amount: int, currency: str
    ) -> RefundResult:
        digest = hashlib.sha256(f"refund:{idempotency_key}".encode()).hexdigest()[:20]
        return RefundResult("sim_re_" + digest)
