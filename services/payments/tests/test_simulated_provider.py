from __future__ import annotations

import pytest

from payments.adapters.psp import SimulatedProvider


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "declined"),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("tok_processingError", "provider_error"),
        ("tok_timeout", "provider_timeout"),
        ("tok_fraudulent", "fraud_rejected"),
        ("4242424242424242", "declined"),
    ],
)
def test_test_tokens_produce_each_failure(token: str, reason: str) -> None:
    result = SimulatedProvider().capture(
        idempotency_key="p-1", token=token, amount=100, currency="EUR"
    )
    assert not result.approved
    assert result.failure_reason == reason


def test_good_tokens_are_approved_with_a_reference_stable_per_payment() -> None:
    provider = SimulatedProvider()
    first = provider.capture(idempotency_key="p-1", token="tok_visa", amount=100, currency="EUR")
    again = provider.capture(idempotency_key="p-1", token="tok_visa", amount=100, currency="EUR")
    assert first.approved
    assert first.provider_reference == again.provider_reference
