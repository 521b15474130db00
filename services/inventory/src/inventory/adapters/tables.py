"""The inventory database: the catalog, stock per warehouse, reservations; outbox, inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
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
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[int]
    status: Mapped[str] = mapped_column(String(12))  # reserved | released | shipped
    updated_at: Mapped[datetime]


class ReservationRequest(InventoryBase):
    """One row per order ever asked for: a redelivered OrderPlaced is answered only once."""

    __tablename__ = "reservation_requests"
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(12))  # reserved | failed
    decided_at: Mapped[datetime]
