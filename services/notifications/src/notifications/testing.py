"""The notifications service on a real database, fed messages the way its consumer feeds them.

For tests: no broker is involved, so whatever the service emits stays in its outbox, and the
channel records the messages it was asked to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kit.consumer import BatchOutcome
from kit.envelope import Envelope
from kit.service import Runtime
from notifications.adapters.channels import Message
from notifications.adapters.tables import Notification, outbox
from notifications.bootstrap import definition
from notifications.settings import NotificationsSettings


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class RecordingChannel:
    name: str = "email"
    sent: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> None:
        self.sent.append(message)


class Notifications:
    def __init__(self, database_url: str) -> None:
        self.channel = RecordingChannel()
        self.runtime = Runtime(
            NotificationsSettings(database_url=database_url), definition(self.channel)
        )
        self.runtime.create_tables()
        self._offset = 0

    def close(self) -> None:
        self.runtime.engine.dispose()
        self.runtime.read_engine.dispose()

    def deliver(self, *envelopes: Envelope) -> BatchOutcome:
        """One consumed batch, handled in one transaction like the Kafka consumer does."""
        records = []
        for envelope in envelopes:
            self._offset += 1
            records.append(
                Record(
                    f"{envelope.producer}.events",
                    0,
                    self._offset,
                    envelope.key.encode(),
                    self.runtime.schemas.encode(envelope.event_type, envelope.payload),
                    envelope.headers(),
                )
            )
        return self.runtime.batch_processor().process(records)

    def log(self, template: str | None = None) -> list[Notification]:
        """The notification log, oldest first."""
        query = select(Notification).order_by(Notification.created_at, Notification.reference)
        if template is not None:
            query = query.where(Notification.template == template)
        with self.runtime.session_factory() as session:
            return list(session.scalars(query))

    def announced(self) -> list[dict[str, Any]]:
        """The NotificationSent payloads staged in the outbox, oldest first."""
        with self.runtime.engine.connect() as connection:
            rows = connection.execute(select(outbox).order_by(outbox.c.id)).all()
        return [self.runtime.schemas.decode(row.value)[1] for row in rows]


def event(event_type: str, producer: str, order_id: str, **payload: Any) -> Envelope:
    """A new envelope each call: a re-sent answer carries a new event id."""
    return Envelope(
        event_type=event_type,
        key=order_id,
        payload={"order_id": order_id, **payload},
        correlation_id=order_id,
        producer=producer,
    )


def order_placed(order_id: str, email: str = "ada@example.com", name: str = "Ada") -> Envelope:
    return event(
        "OrderPlaced",
        "orders",
        order_id,
        customer_id="c-1",
        customer_email=email,
        customer_name=name,
        lines=[{"sku": "T-MUG", "name": "Test mug", "quantity": 2, "unit_price": 1000}],
        currency="EUR",
        subtotal=2000,
        shipping=0,
        total=2000,
        shipping_address={
            "name": name,
            "line1": "1 Test Street",
            "line2": None,
            "city": "Berlin",
            "postal_code": "10115",
            "region": None,
            "country": "DE",
        },
        payment_token="tok_visa",
        placed_at=datetime.now(UTC),
    )


def order_cancelled(order_id: str, detail: str = "An item is out of stock.") -> Envelope:
    return event(
        "OrderCancelled",
        "orders",
        order_id,
        reason="out_of_stock",
        detail=detail,
        cancelled_at=datetime.now(UTC),
    )


def return_label_issued(order_id: str, return_id: str, label_reference: str) -> Envelope:
    return event(
        "ReturnLabelIssued",
        "fulfillment",
        order_id,
        return_id=return_id,
        carrier="simulated-post",
        label_reference=label_reference,
    )


def return_received(
    order_id: str, return_id: str, lines: Sequence[tuple[str, int]] = (("T-MUG", 1),)
) -> Envelope:
    return event(
        "ReturnReceived",
        "fulfillment",
        order_id,
        return_id=return_id,
        lines=[{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        received_at=datetime.now(UTC),
    )


def payment_refunded(order_id: str, refund_id: str, amount: int, currency: str = "EUR") -> Envelope:
    return event(
        "PaymentRefunded",
        "payments",
        order_id,
        refund_id=refund_id,
        payment_id=f"pay-{order_id}",
        amount=amount,
        currency=currency,
        refunded_at=datetime.now(UTC),
    )
