"""The payments database: what each order owes, the payments and refunds made; outbox, inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
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
    # Refunded before anything was captured: the order is called off, nothing will capture.
    voided: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime]

    @property
    def ready_to_capture(self) -> bool:
        return self.stock_reserved and self.amount is not None


class Payment(PaymentsBase):
    """At most one per order: the unique order_id is what makes a second capture impossible."""

    __tablename__ = "payments"
    __table_args__ = (
        # The database itself refuses an over-refund, whatever a handler does.
        CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= amount",
            name="never_refund_more_than_captured",
        ),
    )
    payment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), unique=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12))  # captured | failed
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(String(50))
    refunded_amount: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class Refund(PaymentsBase):
    """One row per RefundPayment ever handled: a repeated command refunds nothing more.

    `amount` is what was actually refunded: 0 when nothing had been captured (the intent
    was voided instead) or nothing was left to refund.
    """

    __tablename__ = "refunds"
    refund_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    payment_id: Mapped[str] = mapped_column(String(36))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(100))
    provider_reference: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
