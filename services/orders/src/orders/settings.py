from __future__ import annotations

from datetime import timedelta

import limits
from pydantic import Field, field_validator

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

    api_key_cache_ttl: timedelta = Field(
        timedelta(seconds=5),
        description="How long a gateway trusts a key it looked up: revocations take effect within",
    )
    long_poll_max_wait: timedelta = Field(
        timedelta(seconds=60), description="Longest a GET /v1/orders/{id}?wait= holds a request"
    )
    long_poll_interval_s: float = Field(0.1, description="How often a long-poll re-reads")
    idempotency_ttl: timedelta = Field(
        timedelta(hours=24), description="How long the first response to a key is replayed"
    )
    idempotency_purge_interval_s: float = Field(
        60.0, description="How often expired Idempotency-Key records are deleted"
    )
    max_body_bytes: int = Field(64 * 1024, description="Larger request bodies get a 413")
    rate_limit: str = Field(
        "200/second",
        description="Requests per API client and gateway process (moving window, `limits` syntax)",
    )
    max_open_orders_per_customer: int = Field(
        20, description="Open (not yet delivered/cancelled) orders one customer may have"
    )
    max_quantity_per_sku: int = Field(
        100, description="Units of one SKU one customer may hold across open orders"
    )
    stuck_order_age: timedelta = Field(
        timedelta(minutes=15),
        description="An order in a non-terminal state for longer than this counts as stuck",
    )
    saga_gauges_interval_s: float = Field(
        5.0, description="How often the orders-by-state and stuck-orders gauges are recounted"
    )

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        limits.parse(value)  # a typo fails at start-up, not on the first request
        return value
