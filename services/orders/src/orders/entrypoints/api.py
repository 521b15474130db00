"""The storefront gateway: thin translation between HTTP and the placing use case."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import select

from kit.problems import ProblemError
from kit.service import Runtime
from kit.unit_of_work import UnitOfWork
from orders import metrics
from orders.adapters.tables import Order, TimelineEntry
from orders.domain.pricing import PricingError, RequestedLine, ShippingPolicy
from orders.handlers.placing import PlaceOrder, place_order
from orders.settings import OrdersSettings

router = APIRouter(prefix="/v1", tags=["orders"])


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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


class OrderIn(StrictModel):
    customer: CustomerIn
    shipping_address: AddressIn
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    payment_token: str = Field(
        min_length=1, max_length=100, description="Payment-method token, e.g. tok_visa"
    )


class LineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: int


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


class OrderOut(BaseModel):
    order_id: str
    status: str
    cancel_reason: str | None
    customer_id: str
    currency: str
    lines: list[LineOut]
    subtotal: int
    shipping: int
    total: int
    placed_at: datetime
    completed_at: datetime | None
    shipment: ShipmentOut | None
    timeline: list[TimelineOut]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_shipping_policy(runtime: Annotated[Runtime, Depends(get_runtime)]) -> ShippingPolicy:
    settings = runtime.settings
    if not isinstance(settings, OrdersSettings):
        raise TypeError("the orders API needs OrdersSettings")
    return ShippingPolicy(settings.shipping_flat_fee, settings.free_shipping_from)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ShippingPolicyDep = Annotated[ShippingPolicy, Depends(get_shipping_policy)]


@router.post("/orders", status_code=202, response_model=OrderOut)
async def create_order(
    body: OrderIn,
    runtime: RuntimeDep,
    shipping: ShippingPolicyDep,
    response: Response,
    traceparent: Annotated[str | None, Header()] = None,
) -> OrderOut:
    command = PlaceOrder(
        order_id=str(uuid.uuid4()),
        customer_id=body.customer.id,
        customer_email=str(body.customer.email),
        customer_name=body.customer.name,
        shipping_address=body.shipping_address.model_dump(),
        lines=tuple(RequestedLine(line.sku, line.quantity) for line in body.lines),
        payment_token=body.payment_token,
        traceparent=traceparent,
    )

    def place(uow: UnitOfWork) -> Order:
        return place_order(uow, command, shipping)

    try:
        # 202 only once the order and its OrderPlaced are committed.
        order = await runtime.committer.submit(place)
    except PricingError as error:
        raise ProblemError(
            422,
            "unorderable-lines",
            "Some lines cannot be ordered",
            str(error),
            errors=[
                {"field": f"lines.{p.index}.sku", "message": p.message, "sku": p.sku}
                for p in error.problems
            ],
        ) from error
    metrics.orders_placed.inc()
    response.headers["Location"] = f"/v1/orders/{order.order_id}"
    return _order_out(order, order.timeline)


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: str, runtime: RuntimeDep) -> OrderOut:
    with runtime.read_session_factory() as session:
        order = session.get(Order, order_id)
        if order is None:
            raise ProblemError(404, "order-not-found", "Order not found", f"no order {order_id}")
        return _order_out(order, _timeline(session, order_id))


def _timeline(session: Any, order_id: str) -> list[TimelineEntry]:
    query = (
        select(TimelineEntry).where(TimelineEntry.order_id == order_id).order_by(TimelineEntry.id)
    )
    return list(session.scalars(query))


def _order_out(order: Order, timeline: list[TimelineEntry]) -> OrderOut:
    shipment = (
        ShipmentOut(
            shipment_id=order.shipment_id,
            carrier=order.carrier,
            tracking_number=order.tracking_number,
        )
        if order.shipment_id
        else None
    )
    return OrderOut(
        order_id=order.order_id,
        status=order.status,
        cancel_reason=order.cancel_reason,
        customer_id=order.customer_id,
        currency=order.currency,
        lines=[LineOut.model_validate(line, from_attributes=True) for line in order.lines],
        subtotal=order.subtotal,
        shipping=order.shipping,
        total=order.total,
        placed_at=order.placed_at,
        completed_at=order.completed_at,
        shipment=shipment,
        timeline=[TimelineOut.model_validate(t, from_attributes=True) for t in timeline],
    )
