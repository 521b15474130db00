"""The fulfillment database: what to ship where, shipments and their timers, return labels;
outbox, inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit.database import TYPE_ANNOTATIONS, kit_tables


class FulfillmentBase(DeclarativeBase):
    type_annotation_map = TYPE_ANNOTATIONS


outbox, inbox = kit_tables(FulfillmentBase.metadata)


class ShippingOrder(FulfillmentBase):
    """Built from OrderPlaced (address, lines) and PaymentCaptured, in either order."""

    __tablename__ = "shipping_orders"
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    paid: Mapped[bool] = mapped_column(default=False)
    # Set by CancelShipment, possibly before any shipping fact arrived: once set, no
    # shipment is ever created for the order.
    cancelled: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime]

    @property
    def ready_to_ship(self) -> bool:
        return self.paid and self.address is not None


class Shipment(FulfillmentBase):
    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_next_step_at", "next_step_at"),)
    shipment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), unique=True)
    carrier: Mapped[str] = mapped_column(String(50))
    tracking_number: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12))  # created | dispatched | delivered | cancelled
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    # When the simulated carrier takes the next step; NULL once delivered or cancelled.
    # Durable, so a restart carries on where it stopped.
    next_step_at: Mapped[datetime | None]
    # Carrier steps taken later by the timer continue the order's trace.
    trace_id: Mapped[str | None] = mapped_column(String(32))


class ReturnAuthorization(FulfillmentBase):
    """A return label issued for (part of) an order, and what the warehouse found on arrival."""

    __tablename__ = "return_authorizations"
    return_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{sku, quantity}] authorized
    carrier: Mapped[str] = mapped_column(String(50))
    label_reference: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(14))  # label_issued | received
    issued_at: Mapped[datetime]
    received_lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    received_at: Mapped[datetime | None]
    # ReturnReceived starts from a warehouse API call: it continues the return's trace.
    trace_id: Mapped[str | None] = mapped_column(String(32))
