"""The orders database: orders, lines, timeline, the catalog copy, plus outbox and inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from kit.database import TYPE_ANNOTATIONS, BigId, kit_tables


class OrdersBase(DeclarativeBase):
    type_annotation_map = TYPE_ANNOTATIONS


outbox, inbox = kit_tables(OrdersBase.metadata)


class CatalogItem(OrdersBase):
    """The local copy of inventory's catalog, kept from CatalogItemUpdated events."""

    __tablename__ = "catalog_items"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool]
    updated_at: Mapped[datetime]


class Order(OrdersBase):
    __tablename__ = "orders"
    __table_args__ = (
        # GET /v1/orders: one client's orders newest first, keyset-paginated (listing.py)
        Index("ix_orders_client_placed", "client_id", "placed_at", "order_id"),
    )
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The storefront client (API key owner) that placed it: the only one that sees it.
    client_id: Mapped[str] = mapped_column(String(64), default="")
    customer_id: Mapped[str] = mapped_column(String(100), index=True)
    customer_email: Mapped[str] = mapped_column(String(254))
    customer_name: Mapped[str] = mapped_column(String(200))
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSON)
    notes: Mapped[str | None] = mapped_column(String(1000))
    client_metadata: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int]
    shipping: Mapped[int]
    total: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), index=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(50))
    payment_id: Mapped[str | None] = mapped_column(String(64))
    shipment_id: Mapped[str | None] = mapped_column(String(64))
    carrier: Mapped[str | None] = mapped_column(String(50))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    dispatched_at: Mapped[datetime | None]
    refunded: Mapped[int] = mapped_column(default=0)
    placed_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    status_since: Mapped[datetime]  # when the saga entered `status`: time-in-state, stuck orders
    completed_at: Mapped[datetime | None]  # delivered: the return window counts from here
    trace_id: Mapped[str | None] = mapped_column(String(32))  # timers continue the trace

    # The saga's own state besides the status, all durable so a restart carries on:
    # acknowledgement event type -> the reference it must carry (see domain.saga.SagaState)
    awaiting: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    retry_attempts: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None] = mapped_column(index=True)  # re-send unacknowledged
    deadline_at: Mapped[datetime | None] = mapped_column(index=True)  # the step's deadline
    active_return_id: Mapped[str | None] = mapped_column(String(36))

    lines: Mapped[list[OrderLine]] = relationship(
        order_by="OrderLine.line_no", cascade="all, delete-orphan"
    )
    timeline: Mapped[list[TimelineEntry]] = relationship(
        order_by="TimelineEntry.id", cascade="all, delete-orphan", lazy="raise"
    )
    returns: Mapped[list[OrderReturn]] = relationship(
        order_by="OrderReturn.requested_at", cascade="all, delete-orphan"
    )


class OrderLine(OrdersBase):
    __tablename__ = "order_lines"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_price: Mapped[int]


class TimelineEntry(OrdersBase):
    """Everything that happened to an order, in the order the saga saw it."""

    __tablename__ = "order_timeline"
    __table_args__ = (Index("ix_order_timeline_order", "order_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"))
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime]
    status_after: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(300))


class OrderReturn(OrdersBase):
    """One return of some of an order's lines; an order may have several, one at a time."""

    __tablename__ = "order_returns"
    return_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # requested|label_issued|received|refunded
    reason: Mapped[str] = mapped_column(String(500))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    received_lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    carrier: Mapped[str | None] = mapped_column(String(50))
    label_reference: Mapped[str | None] = mapped_column(String(100))
    refund_id: Mapped[str] = mapped_column(String(36))
    refund_amount: Mapped[int | None]
    requested_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class ApiClient(OrdersBase):
    """An API key of a storefront client. Only a hash of the secret is stored."""

    __tablename__ = "api_keys"
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public part of the key
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the secret part
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class IdempotencyRecord(OrdersBase):
    """The first response to a POST with an Idempotency-Key, replayed to its retries."""

    __tablename__ = "idempotency_keys"
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    response_status: Mapped[int]
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
