"""The notifications service on a real database, fed messages the way its consumer feeds them.

For tests: the kit's `ServiceHarness`, with a channel that records the messages it was asked
to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kit.envelope import Envelope
from kit.testing import service_harness
from kit.testing.service_harness import ServiceHarness, event, sku_lines
from notifications.adapters.channels import Message
from notifications.adapters.tables import Notification
from notifications.bootstrap import definition
from notifications.settings import NotificationsSettings


@dataclass
class RecordingChannel:
    name: str = "email"
    sent: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> None:
        self.sent.append(message)


class Notifications(ServiceHarness):
    def __init__(self, database_url: str) -> None:
        self.channel = RecordingChannel()
        super().__init__(NotificationsSettings(database_url=database_url), definition(self.channel))

    def log(self, template: str | None = None) -> list[Notification]:
        """The notification log, oldest first."""
        query = select(Notification).order_by(Notification.created_at, Notification.reference)
        if template is not None:
            query = query.where(Notification.template == template)
        with self.session() as session:
            return list(session.scalars(query))

    def announced(self) -> list[dict[str, Any]]:
        """The NotificationSent payloads staged in the outbox, oldest first."""
        return self.payloads("NotificationSent")


def order_placed(order_id: str, email: str = "ada@example.com", name: str = "Ada") -> Envelope:
    return service_harness.order_placed(order_id, customer_email=email, customer_name=name)


def order_cancelled(order_id: str, detail: str = "An item is out of stock.") -> Envelope:
    return event(
        "OrderCancelled",
        order_id,
        "orders",
        reason="out_of_stock",
        detail=detail,
        cancelled_at=datetime.now(UTC),
    )


def return_label_issued(order_id: str, return_id: str, label_reference: str) -> Envelope:
    return event(
        "ReturnLabelIssued",
        order_id,
        "fulfillment",
        return_id=return_id,
        carrier="simulated-post",
        label_reference=label_reference,
    )


def return_received(
    order_id: str, return_id: str, lines: Sequence[tuple[str, int]] = (("T-MUG", 1),)
) -> Envelope:
    return event(
        "ReturnReceived",
        order_id,
        "fulfillment",
        return_id=return_id,
        lines=sku_lines(lines),
        received_at=datetime.now(UTC),
    )


def payment_refunded(order_id: str, refund_id: str, amount: int, currency: str = "EUR") -> Envelope:
    return event(
        "PaymentRefunded",
        order_id,
        "payments",
        refund_id=refund_id,
        payment_id=f"pay-{order_id}",
        amount=amount,
        currency=currency,
        refunded_at=datetime.now(UTC),
    )
