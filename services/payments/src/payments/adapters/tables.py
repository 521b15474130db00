"""The payments database: what each order owes, the payments made; outbox and inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit.database import TYPE_ANNOTATIONS, kit_tables


class PaymentsBase(DeclarativeBase):
    type_annotation_map = TYPE_ANNOTATIONS


outbox, inbox = kit_tables(PaymentsBase.metadata)


class PaymentIntent(PaymentsBase):
    """Built from two events that may arrive in either order: OrderPlaced and StockReserved."""

    __tablename__ = "payment_intents"
    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[int | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    payment_token: Mapped[str | None] = mapped_column(String(100))
    stock_reserved: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime]

    @property
    def ready_to_capture(self) -> bool:
        return self.stock_reserved and self.amount is not None


class Payment(PaymentsBase):
    """At most one per order: the unique order_id is what makes a second capture impossible."""

    __tablename__ = "payments"
    payment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), unique=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12))  # captured | failed
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime]
