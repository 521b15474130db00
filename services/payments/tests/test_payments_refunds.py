"""RefundPayment through payments' own consumer wiring, on every database.

The saga re-sends each command (under a new event id) until it sees the answer, and a refund
may overtake the events that lead to the capture: each test feeds such sequences to the
real subscription and checks money moved, answers given and the door the refund closes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kit.avro_codec import SchemaStore
from kit.consumer import BatchProcessor
from kit.database import create_database_engine
from kit.envelope import Envelope
from kit.settings import REPO_ROOT
from kit.unit_of_work import UnitOfWork
from payments import contracts
from payments.adapters.psp import CaptureResult, RefundResult, SimulatedProvider
from payments.adapters.tables import Payment, PaymentIntent, PaymentsBase, inbox, outbox
from payments.bootstrap import definition
from payments.handlers.intents import payment_id_for

SCHEMAS = SchemaStore.load(REPO_ROOT / "schemas")
ORDER = "order-1"
TOTAL = 1000


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


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


class Payments:
    """The payments service's database and consumer, fed batches by hand instead of Kafka."""

    def __init__(self, url: str) -> None:
        self.engine = create_database_engine(url)
        PaymentsBase.metadata.create_all(self.engine)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.provider = RecordingProvider()
        subscription = definition(self.provider).subscription
        assert subscription is not None
        self.processor = BatchProcessor(
            subscription, SCHEMAS, self.unit_of_work, group_id="payments"
        )
        self._offset = 0

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, SCHEMAS, contracts.PUBLISHES, outbox, inbox, "payments")

    def receive(self, *messages: tuple[str, Mapping[str, Any]]) -> None:
        """One consumed batch; every message, a repeat included, carries a new event id."""
        records = []
        for event_type, payload in messages:
            envelope = Envelope(
                event_type=event_type,
                key=payload["order_id"],
                payload=payload,
                correlation_id=payload["order_id"],
                producer="test",
            )
            self._offset += 1
            records.append(
                Record(
                    "orders.commands",
                    0,
                    self._offset,
                    envelope.key.encode(),
                    SCHEMAS.encode(event_type, payload),
                    envelope.headers(),
                )
            )
        outcome = self.processor.process(records)
        assert outcome.dead_lettered == 0, "a handler failed"

    def emitted(self, event_type: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            values = connection.execute(
                select(outbox.c.value)
                .where(outbox.c.event_type == event_type)
                .order_by(outbox.c.id)
            ).scalars()
            return [SCHEMAS.decode(value)[1] for value in values]

    def payment(self) -> Payment | None:
        with self.sessions() as session:
            return session.scalar(select(Payment).where(Payment.order_id == ORDER))


@pytest.fixture
def payments(database_url: str) -> Iterator[Payments]:
    service = Payments(database_url)
    yield service
    service.engine.dispose()


def order_placed(token: str = "tok_visa") -> tuple[str, dict[str, Any]]:
    return "OrderPlaced", {
        "order_id": ORDER,
        "customer_id": "c-1",
        "customer_email": "c-1@example.com",
        "customer_name": "Test Customer",
        "lines": [{"sku": "A", "name": "A", "quantity": 1, "unit_price": TOTAL}],
        "currency": "EUR",
        "subtotal": TOTAL,
        "shipping": 0,
        "total": TOTAL,
        "shipping_address": {
            "name": "Test Customer",
            "line1": "1 Test Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "payment_token": token,
        "placed_at": datetime.now(UTC),
    }


def stock_reserved() -> tuple[str, dict[str, Any]]:
    return "StockReserved", {
        "order_id": ORDER,
        "reservation_id": "res-1",
        "lines": [{"sku": "A", "quantity": 1, "warehouse": "WH-1"}],
    }


def refund_payment(refund_id: str, amount: int) -> tuple[str, dict[str, Any]]:
    return "RefundPayment", {
        "order_id": ORDER,
        "refund_id": refund_id,
        "amount": amount,
        "currency": "EUR",
        "reason": "returned",
    }


def captured(payments: Payments) -> str:
    payments.receive(order_placed(), stock_reserved())
    [capture] = payments.emitted("PaymentCaptured")
    payment_id: str = capture["payment_id"]
    return payment_id


def answers(payments: Payments) -> list[tuple[str, str, int, str]]:
    return [
        (event["refund_id"], event["payment_id"], event["amount"], event["currency"])
        for event in payments.emitted("PaymentRefunded")
    ]


def test_a_refund_after_the_capture_refunds_the_amount(payments: Payments) -> None:
    payment_id = captured(payments)
    payments.receive(refund_payment("r-1", 400))
    assert answers(payments) == [("r-1", payment_id, 400, "EUR")]
    assert payments.provider.refunds == [("r-1", 400)]
    payment = payments.payment()
    assert payment is not None
    assert payment.refunded_amount == 400


def test_a_repeated_refund_refunds_once_and_answers_alike(payments: Payments) -> None:
    payment_id = captured(payments)
    payments.receive(refund_payment("r-1", 400))
    payments.receive(refund_payment("r-1", 400))
    assert answers(payments) == [("r-1", payment_id, 400, "EUR")] * 2
    first, again = payments.emitted("PaymentRefunded")
    assert first["refunded_at"] == again["refunded_at"]
    assert payments.provider.refunds == [("r-1", 400)]
    payment = payments.payment()
    assert payment is not None
    assert payment.refunded_amount == 400


def test_a_refund_before_any_capture_voids_the_order_and_nothing_is_ever_captured(
    payments: Payments,
) -> None:
    payments.receive(refund_payment("r-1", TOTAL))
    assert answers(payments) == [("r-1", payment_id_for(ORDER), 0, "EUR")]
    payments.receive(stock_reserved())
    payments.receive(order_placed())
    assert payments.emitted("PaymentCaptured") == []
    assert payments.emitted("PaymentFailed") == []
    assert payments.provider.captures == []
    assert payments.payment() is None
    with payments.sessions() as session:
        intent = session.get(PaymentIntent, ORDER)
        assert intent is not None
        assert intent.voided


def test_a_refund_and_the_late_events_in_one_batch_capture_nothing(payments: Payments) -> None:
    payments.receive(refund_payment("r-1", TOTAL), stock_reserved(), order_placed())
    assert payments.emitted("PaymentCaptured") == []
    assert payments.provider.captures == []
    assert answers(payments) == [("r-1", payment_id_for(ORDER), 0, "EUR")]


def test_a_refund_after_a_failed_payment_refunds_nothing(payments: Payments) -> None:
    payments.receive(order_placed("tok_chargeDeclined"), stock_reserved())
    assert len(payments.emitted("PaymentFailed")) == 1
    payments.receive(refund_payment("r-1", TOTAL))
    assert answers(payments) == [("r-1", payment_id_for(ORDER), 0, "EUR")]
    assert payments.provider.refunds == []


def test_refunds_together_never_exceed_the_capture(payments: Payments) -> None:
    payment_id = captured(payments)
    payments.receive(refund_payment("r-1", 700))
    payments.receive(refund_payment("r-2", 500))
    payments.receive(refund_payment("r-3", 100))
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
    payments.receive(refund_payment("r-1", 400))
    payments.receive(order_placed(), stock_reserved())
    assert len(payments.emitted("PaymentCaptured")) == 1
    assert payments.provider.captures == [TOTAL]


def test_the_database_refuses_an_over_refund(payments: Payments) -> None:
    captured(payments)
    with payments.sessions() as session:
        payment = session.scalar(select(Payment).where(Payment.order_id == ORDER))
        assert payment is not None
        payment.refunded_amount = TOTAL + 1
        with pytest.raises(IntegrityError):
            session.commit()
