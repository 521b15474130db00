"""The notifications database: contacts per order and the notification log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit.database import TYPE_ANNOTATIONS, kit_tables


class NotificationsBase(DeclarativeBase):
    type_annotation_map = TYPE_ANNOTATIONS


outbox, inbox = kit_tables(NotificationsBase.metadata)


class Contact(NotificationsBase):
    __tablename__ = "contacts"
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))


class Notification(NotificationsBase):
    """One per (order, template, reference): a redelivered event, or a repeated answer under a
    new event id, can never notify a customer twice."""

    __tablename__ = "notification_log"
    __table_args__ = (UniqueConstraint("order_id", "template", "reference"),)
    notification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    template: Mapped[str] = mapped_column(String(50))
    # What the notification is about within the order, for templates an order can have more
    # than one of: a return id, a refund id. "" for order-level notifications.
    reference: Mapped[str] = mapped_column(String(64), default="", server_default="")
    channel: Mapped[str] = mapped_column(String(20))
    # sent | awaiting_contact (the event came before the OrderPlaced that names the customer)
    status: Mapped[str] = mapped_column(String(20))
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    recipient: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
