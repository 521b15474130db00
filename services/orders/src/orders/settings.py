from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from kit.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    """Durations accept seconds (`90`) or ISO 8601 (`PT90S`, `P30D`)."""

    service_name: str = "orders"
    http_port: int = 8000
    shipping_flat_fee: int = 499
    free_shipping_from: int = 10_000

    stock_deadline: timedelta = Field(
        timedelta(seconds=60), description="PENDING longer than this: the order is compensated"
    )
    payment_deadline: timedelta = Field(
        timedelta(minutes=2), description="RESERVED longer than this: compensated"
    )
    shipment_deadline: timedelta = Field(
        timedelta(minutes=10), description="PAID without a shipment longer than this"
    )
    compensation_retry_initial: timedelta = Field(
        timedelta(seconds=5), description="First re-send of an unacknowledged command"
    )
    compensation_retry_max: timedelta = Field(
        timedelta(minutes=5), description="Longest pause between re-sends (backoff doubles)"
    )
    return_window: timedelta = Field(
        timedelta(days=30), description="How long after delivery a return may be requested"
    )
    saga_timer_interval_s: float = Field(
        0.5, description="How often deadlines and re-sends are checked"
    )
