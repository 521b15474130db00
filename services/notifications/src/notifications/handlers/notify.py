"""Customer notifications: one per order, template and reference, rendered, sent, logged,
announced."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork
from notifications.adapters.channels import Channel
from notifications.adapters.rendering import render
from notifications.adapters.tables import Contact, Notification

log = logging.getLogger(__name__)


class NotificationHandlers:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def on_order_placed(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        order_id = payload["order_id"]
        if uow.session.get(Contact, order_id) is None:
            uow.session.add(
                Contact(
                    order_id=order_id,
                    email=payload["customer_email"],
                    name=payload["customer_name"],
                )
            )
            uow.session.flush()
        self._notify(
            envelope,
            uow,
            order_id,
            "order_confirmation",
            {
                "lines": [
                    {"name": line["name"], "quantity": line["quantity"]}
                    for line in payload["lines"]
                ],
                "total": payload["total"],
                "currency": payload["currency"],
            },
        )
        # Notifications that arrived before we knew whom to tell go out now.
        waiting = uow.session.scalars(
            select(Notification).where(
                Notification.order_id == order_id, Notification.status == "awaiting_contact"
            )
        )
        for notification in waiting:
            self._send(envelope, uow, notification)

    def on_shipment_dispatched(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        self._notify(
            envelope,
            uow,
            payload["order_id"],
            "order_dispatched",
            {
                "carrier": payload["carrier"],
                "tracking_number": payload["tracking_number"],
            },
        )

    def on_order_cancelled(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        self._notify(
            envelope,
            uow,
            payload["order_id"],
            "order_cancelled",
            {"reason": payload["reason"], "detail": payload["detail"]},
        )

    def on_return_label_issued(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        self._notify(
            envelope,
            uow,
            payload["order_id"],
            "return_label_issued",
            {
                "return_id": payload["return_id"],
                "carrier": payload["carrier"],
                "label_reference": payload["label_reference"],
            },
            reference=payload["return_id"],
        )

    def on_return_received(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        self._notify(
            envelope,
            uow,
            payload["order_id"],
            "return_received",
            {
                "return_id": payload["return_id"],
                "lines": [
                    {"sku": line["sku"], "quantity": line["quantity"]} for line in payload["lines"]
                ],
            },
            reference=payload["return_id"],
        )

    def on_payment_refunded(self, envelope: Envelope, uow: UnitOfWork) -> None:
        payload = envelope.payload
        if payload["amount"] <= 0:
            return  # nothing was paid back (e.g. nothing had been captured): nothing to tell
        self._notify(
            envelope,
            uow,
            payload["order_id"],
            "refund_processed",
            {
                "refund_id": payload["refund_id"],
                "amount": payload["amount"],
                "currency": payload["currency"],
            },
            reference=payload["refund_id"],
        )

    def _notify(
        self,
        cause: Envelope,
        uow: UnitOfWork,
        order_id: str,
        template: str,
        context: dict[str, Any],
        reference: str = "",
    ) -> None:
        exists = uow.session.scalar(
            select(Notification.notification_id).where(
                Notification.order_id == order_id,
                Notification.template == template,
                Notification.reference == reference,
            )
        )
        if exists:
            return
        notification = Notification(
            notification_id=notification_id(order_id, template, reference),
            order_id=order_id,
            template=template,
            reference=reference,
            channel=self._channel.name,
            status="awaiting_contact",
            context=context,
            trace_id=cause.trace_id,
            created_at=datetime.now(UTC),
        )
        uow.session.add(notification)
        self._send(cause, uow, notification)

    def _send(self, cause: Envelope, uow: UnitOfWork, notification: Notification) -> None:
        contact = uow.session.get(Contact, notification.order_id)
        if contact is None:
            return  # stays awaiting_contact until OrderPlaced names the customer
        message = render(
            notification.template,
            contact.email,
            {"order_id": notification.order_id, "name": contact.name, **notification.context},
            idempotency_key=notification.notification_id,
        )
        self._channel.send(message)
        now = datetime.now(UTC)
        notification.status, notification.sent_at = "sent", now
        notification.recipient, notification.subject, notification.body = (
            message.recipient,
            message.subject,
            message.body,
        )
        uow.emit(
            cause.caused(
                "NotificationSent",
                {
                    "order_id": notification.order_id,
                    "notification_id": notification.notification_id,
                    "channel": notification.channel,
                    "template": notification.template,
                    "recipient": message.recipient,
                    "sent_at": now,
                },
                producer=uow.service_name,
            )
        )
        log.info("notification %s sent for order %s", notification.template, notification.order_id)


def notification_id(order_id: str, template: str, reference: str = "") -> str:
    """Deterministic, so a notification keeps its id (the channel's idempotency key) however
    often it is attempted. Order-level ids keep the form they had before references."""
    name = f"notification:{order_id}:{template}"
    if reference:
        name += f":{reference}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))
