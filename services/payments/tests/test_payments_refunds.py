"""RefundPayment through payments' own consumer wiring, on every database.

The saga re-sends each command (under a new event id) until it sees the answer, and a refund
may overtake the events that lead to the capture: each test feeds such sequences to the
real subscription and checks money moved, answers given and the door the refund closes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kit.envelope import Envelope
from kit.testing.service_harness import UNIT_PRICE, ServiceHarness, command, event, order_placed
from payments.adapters.psp import CaptureResult, RefundResult, SimulatedProvider
from payments.adapters.tables import Payment, PaymentIntent
from payments.bootstrap import definition
from payments.handlers.intents import payment_id_for
from payments.settings import PaymentsSettings

ORDER = "order-1"
TOTAL = UNIT_PRICE  # one item


class RecordingProvider(SimulatedProvider):
    """The simulator, remembering every capture and refund asked of it."""

    def __init__(self) -> None:
        self.captures: list[int] = []
        self.refunds: list[tuple[str, int]] = []

    def capture(
        self, *, idempotency_key: str, token: str, amount: int, currency: str
    ) -> CaptureResult:
        self.captures.append(amount)
        return super().capture(
            idempotency_key=idempotency_key, token=token, amount=amount, currency=currency
        )

    def refund(
        self, *, idempotency_key: str, provider_reference: str, amount: int, currency: str
    ) -> RefundResult:
        self.refunds.append((idempotency_key, amount))
        return super().refund(
            idempotency_key=idempotency_key,
            provider_reference=provider_reference,
            amount=amount,
            currency=currency,
        )


class Payments(ServiceHarness):
    def __init__(self, database_url: str) -> None:
        self.provider = RecordingProvider()
        super().__init__(
            PaymentsSettings(database_url=database_url),
            definition(self.provider),
            commands=("RefundPayment",),
        )

    def payment(self) -> Payment | None:
        with self.session() as session:
            return session.scalar(select(Payment).where(Payment.order_id == ORDER))


@pytest.fixture
def payments(database_url: str) -> Iterator[Payments]:
    service = Payments(database_url)
    yield service
    service.close()


def placed(token: str = "tok_visa") -> Envelope:
    return order_placed(ORDER, [("A", 1)], payment_token=token)


def stock_reserved() -> Envelope:
    return event(
        "StockReserved",
        ORDER,
        "inventory",
        reservation_id="res-1",
        lines=[{"sku": "A", "quantity": 1, "warehouse": "WH-1"}],
    )


def refund_payment(refund_id: str, amount: int) -> Envelope:
    return command(
        "RefundPayment",
        ORDER,
        refund_id=refund_id,
        amount=amount,
        currency="EUR",
        reason="returned",
    )


def captured(payments: Payments) -> str:
    payments.deliver(placed(), stock_reserved())
    [capture] = payments.payloads("PaymentCaptured")
    payment_id: str = capture["payment_id"]
    return payment_id


def answers(payments: Payments) -> list[tuple[str, str, int, str]]:
    return [
        (refunded["refund_id"], refunded["payment_id"], refunded["amount"], refunded["currency"])
        for refunded in payments.payloads("PaymentRefunded")
    ]


def test_a_refund_after_the_capture_refunds_the_amount(payments: Payments) -> None:
    payment_id = captured(payments)
    payments.deliver(refund_payment("r-1", 400))
    assert answers(payments) == [("r-1", payment_id, 400, "EUR")]
    assert payments.provider.refunds == [("r-1", 400)]
    payment = payments.payment()
    assert payment is not None
    assert payment.refunded_amount == 400


def test_a_repeated_refund_refunds_once_and_answers_alike(payments: Payments) -> None:
    payment_id = captured(payments)
    payments.deliver(refund_payment("r-1", 400))
    payments.deliver(refund_payment("r-1", 400))
    assert answers(payments) == [("r-1", payment_id, 400, "EUR")] * 2
    first, again = payments.payloads("PaymentRefunded")
    assert first["refunded_at"] == again["refunded_at"]
    assert payments.provider.refunds == [("r-1", 400)]
    payment = payments.payment()
    assert payment is not None
    assert payment.refunded_amount == 400


def test_a_refund_before_any_capture_voids_the_order_and_nothing_is_ever_captured(
    payments: Payments,
) -> None:
    payments.deliver(refund_payment("r-1", TOTAL))
    assert answers(payments) == [("r-1", payment_id_for(ORDER), 0, "EUR")]
    payments.deliver(stock_reserved())
    payments.deliver(placed())
    assert payments.payloads("PaymentCaptured") == []
    assert payments.payloads("PaymentFailed") == []
    assert payments.provider.captures == []
    assert payments.payment() is None
    with payments.session() as session:
        intent = session.get(PaymentIntent, ORDER)
        assert intent is not None
        assert intent.voided


def test_a_refund_and_the_late_events_in_one_batch_capture_nothing(payments: Payments) -> None:
    payments.deliver(refund_payment("r-1", TOTAL), stock_reserved(), placed())
    assert payments.payloads("PaymentCaptured") == []
    assert payments.provider.captures == []
    assert answers(payments) == [("r-1", payment_id_for(ORDER), 0, "EUR")]


def test_a_refund_after_a_failed_payment_refunds_nothing(payments: Payments) -> None:
    payments.deliver(placed("tok_chargeDeclined"), stock_reserved())
    assert len(payments.payloads("PaymentFailed")) == 1
    payments.deliver(refund_payment("r-1", TOTAL))
    assert answers(payments) == [("r-1", payment_id_for(ORDER), 0, "EUR")]
    assert payments.provider.refunds == []


def test_refunds_together_never_exceed_the_capture(payments: Payments) -> None:
    payment_id = captured(payments)
    payments.deliver(refund_payment("r-1", 700))
    payments.deliver(refund_payment("r-2", 500))
    payments.deliver(refund_payment("r-3", 100))
    assert answers(payments) == [
        ("r-1", payment_id, 700, "EUR"),
        ("r-2", payment_id, 300, "EUR"),
        ("r-3", payment_id, 0, "EUR"),
    ]
    assert payments.provider.refunds == [("r-1", 700), ("r-2", 300)]
    payment = payments.payment()
    assert payment is not None
    assert payment.refunded_amount == TOTAL


def test_the_capture_still_happens_once_when_its_events_come_again_after_a_refund(
    payments: Payments,
) -> None:
    captured(payments)
    payments.deliver(refund_payment("r-1", 400))
    payments.deliver(placed(), stock_reserved())
    assert len(payments.payloads("PaymentCaptured")) == 1
    assert payments.provider.captures == [TOTAL]


def test_the_database_refuses_an_over_refund(payments: Payments) -> None:
    captured(payments)
    with payments.session() as session:
        payment = session.scalar(select(Payment).where(Payment.order_id == ORDER))
        assert payment is not None
        payment.refunded_amount = TOTAL + 1
        with pytest.raises(IntegrityError):
            session.commit()
