"""The payments service's business metrics (catalog: docs/METRICS.md)."""

from __future__ import annotations

from prometheus_client import Counter

from kit.envelope import Envelope
from kit.metrics import major_units

attempts = Counter(
    "payments_attempts_total",
    "Payment attempts by outcome: captured or the failure reason",
    ["outcome"],
)
captured_amount = Counter("payments_captured_amount_total", "Money captured", ["currency"])
refunds = Counter("payments_refunds_total", "Refunds (and voids) processed")
refunded_amount = Counter("payments_refunded_amount_total", "Money refunded", ["currency"])


def count_emitted(envelope: Envelope) -> None:
    """Each capture attempt is answered exactly once (the intent is decided once)."""
    payload = envelope.payload
    if envelope.event_type == "PaymentCaptured":
        attempts.labels("captured").inc()
        captured_amount.labels(payload["currency"]).inc(major_units(payload["amount"]))
    elif envelope.event_type == "PaymentFailed":
        attempts.labels(payload["reason"]).inc()


def initialize(failure_reasons: tuple[str, ...]) -> None:
    """Known outcomes start at 0: a decline rate of 0 %, not "no data", before the first one."""
    for outcome in ("captured", *failure_reasons):
        attempts.labels(outcome)
