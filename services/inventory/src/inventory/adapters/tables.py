"""The inventory database: catalog, stock per warehouse, reservations, restocks; outbox, inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit.database import TYPE_ANNOTATIONS, kit_tables


class InventoryBase(DeclarativeBase):
    type_annotation_map = TYPE_ANNOTATIONS


outbox, inbox = kit_tables(InventoryBase.metadata)


class CatalogItem(InventoryBase):
    __tablename__ = "catalog_items"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool]
    low_stock_threshold: Mapped[int]
    updated_at: Mapped[datetime]


class StockLevel(InventoryBase):
    """`on_hand` is physically there; `reserved` is promised to orders not yet shipped."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        # The database itself refuses an oversell, whatever a handler does.
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="stock_never_oversold"),
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32), primary_key=True)
    on_hand: Mapped[int]
    reserved: Mapped[int]

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(InventoryBase):
    __tablename__ = "reservations"
    __table_args__ = (
        # Returned units go back where they left from: never more than left for the order.
        CheckConstraint(
            "restocked >= 0 AND restocked <= quantity", name="never_restock_more_than_shipped"
        ),
    )
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[int]
    status: Mapped[str] = mapped_column(String(12))  # reserved | released | shipped
    restocked: Mapped[int] = mapped_column(default=0)  # units of it returned and restocked
    updated_at: Mapped[datetime]


class ReservationRequest(InventoryBase):
    """One row per order ever asked for: a redelivered OrderPlaced is answered only once.

    `cancelled`: ReleaseStock came first; the order is decided, and its OrderPlaced, when it
    arrives, reserves nothing.
    """

    __tablename__ = "reservation_requests"
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(12))  # reserved | failed | cancelled
    decided_at: Mapped[datetime]


class Restock(InventoryBase):
    """One row per return put back on the shelf: a repeated RestockItems restocks nothing."""

    __tablename__ = "restocks"
    return_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    # What was actually restocked, per SKU ([{sku, quantity}]): every answer repeats it.
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    restocked_at: Mapped[datetime]
