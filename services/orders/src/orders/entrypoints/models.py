"""The gateway's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from kit.api import StrictModel


class CustomerIn(StrictModel):
    id: str = Field(min_length=1, max_length=100)
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)


class AddressIn(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    region: str | None = Field(default=None, max_length=100)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class LineIn(StrictModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1000)


MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


class OrderIn(StrictModel):
    customer: CustomerIn
    shipping_address: AddressIn
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    payment_token: str = Field(
        min_length=1, max_length=100, description="Payment-method token, e.g. tok_visa"
    )
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code the storefront shows prices in; if given, the catalog's "
        "currency must match it (422 otherwise). Prices always come from the catalog.",
    )
    notes: str | None = Field(default=None, max_length=1000, description="For the warehouse")
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=20,
        description="The storefront's own references (e.g. its cart id), returned as given",
    )
    sales_channel: str = Field(
        default="web",
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="Storefront channel the order came through (web, app, marketplace, pos…); "
        "passed on in OrderPlaced for the services downstream",
    )


class ReturnIn(StrictModel):
    lines: list[LineIn] = Field(min_length=1, max_length=100, description="What goes back")
    reason: str = Field(min_length=1, max_length=500)


class LineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: int


class ReturnLineOut(BaseModel):
    sku: str
    quantity: int


class TimelineOut(BaseModel):
    event_type: str
    source: str
    occurred_at: datetime
    status_after: str
    note: str | None


class ShipmentOut(BaseModel):
    shipment_id: str
    carrier: str | None
    tracking_number: str | None
    dispatched_at: datetime | None


class ReturnOut(BaseModel):
    return_id: str
    order_id: str
    status: str = Field(description="requested | label_issued | received | refunded")
    reason: str
    lines: list[ReturnLineOut]
    received_lines: list[ReturnLineOut] | None
    carrier: str | None
    label_reference: str | None = Field(description="What the customer puts on the parcel")
    refund_amount: int | None
    requested_at: datetime
    completed_at: datetime | None


class OrderOut(BaseModel):
    order_id: str
    status: str
    cancel_reason: str | None
    customer_id: str
    currency: str
    lines: list[LineOut]
    subtotal: int = Field(description="Integer minor units of `currency`, as every amount")
    shipping: int
    tax: int = Field(description="Included in the prices; 0 until a tax engine is configured")
    total: int
    refunded: int
    placed_at: datetime
    completed_at: datetime | None = Field(description="When it was delivered")
    deadline_at: datetime | None = Field(description="When the current step times out")
    awaiting: list[str] = Field(description="Acknowledgements the saga is waiting for")
    retry_attempts: int
    shipment: ShipmentOut | None
    returns: list[ReturnOut]
    notes: str | None
    metadata: dict[str, str]
    timeline: list[TimelineOut]
