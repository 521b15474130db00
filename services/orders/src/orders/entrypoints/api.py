"""The storefront gateway: thin translation between HTTP and the orders use cases."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from kit.api import RuntimeDep
from kit.problems import ProblemError
from kit.unit_of_work import UnitOfWork
from orders import metrics
from orders.adapters.tables import Order, OrderReturn, TimelineEntry
from orders.domain.pricing import PricingError, RequestedLine, ShippingPolicy
from orders.domain.returns import ReturnError, ReturnLine
from orders.entrypoints.models import (
    LineOut,
    OrderIn,
    OrderOut,
    ReturnIn,
    ReturnLineOut,
    ReturnOut,
    ShipmentOut,
    TimelineOut,
)
from orders.handlers.customer_requests import (
    OrderNotFoundError,
    RequestRefusedError,
    request_cancellation,
    request_return,
)
from orders.handlers.placing import PlaceOrder, place_order
from orders.handlers.saga import Saga
from orders.settings import OrdersSettings

router = APIRouter(prefix="/v1", tags=["orders"])


def get_settings(runtime: RuntimeDep) -> OrdersSettings:
    settings = runtime.settings
    if not isinstance(settings, OrdersSettings):
        raise TypeError("the orders API needs OrdersSettings")
    return settings


SettingsDep = Annotated[OrdersSettings, Depends(get_settings)]


@router.post("/orders", status_code=202, response_model=OrderOut)
async def create_order(
    body: OrderIn,
    runtime: RuntimeDep,
    settings: SettingsDep,
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
    shipping = ShippingPolicy(settings.shipping_flat_fee, settings.free_shipping_from)

    def place(uow: UnitOfWork) -> Order:
        return place_order(uow, command, shipping, settings.stock_deadline)

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
            raise _not_found(order_id)
        return _order_out(order, _timeline(session, order_id))


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    response_model=OrderOut,
    responses={409: {"description": "Dispatched already: request a return instead"}},
)
async def cancel_order(order_id: str, runtime: RuntimeDep, settings: SettingsDep) -> OrderOut:
    """Cancels the order, undoing whatever had happened (shipment, payment, stock reservation).

    Accepted until the shipment is dispatched; the order then shows COMPENSATING and the
    acknowledgements it waits for, and ends CANCELLED. Asking again is harmless."""
    saga = Saga(settings)
    try:
        await runtime.committer.submit(lambda uow: request_cancellation(uow, saga, order_id))
    except OrderNotFoundError as error:
        raise _not_found(order_id) from error
    except RequestRefusedError as error:
        raise ProblemError(
            409, error.kind, "The order can no longer be cancelled", error.detail
        ) from error
    return get_order(order_id, runtime)


@router.post(
    "/orders/{order_id}/returns",
    status_code=202,
    response_model=ReturnOut,
    responses={409: {"description": "Not delivered, a return in progress, or window closed"}},
)
async def return_goods(
    order_id: str, body: ReturnIn, runtime: RuntimeDep, settings: SettingsDep, response: Response
) -> ReturnOut:
    """Starts a return of some or all delivered lines; the return label follows shortly
    (GET the order: `returns[].label_reference`)."""
    saga = Saga(settings)
    lines = [ReturnLine(line.sku, line.quantity) for line in body.lines]
    try:
        order_return = await runtime.committer.submit(
            lambda uow: request_return(uow, saga, order_id, lines, body.reason)
        )
    except OrderNotFoundError as error:
        raise _not_found(order_id) from error
    except RequestRefusedError as error:
        raise ProblemError(
            409, error.kind, "The order cannot be returned now", error.detail
        ) from error
    except ReturnError as error:
        raise ProblemError(
            422,
            "invalid-return-lines",
            "Some lines cannot be returned",
            str(error),
            errors=[{"message": problem} for problem in error.problems],
        ) from error
    response.headers["Location"] = f"/v1/orders/{order_id}"
    return _return_out(order_return, order_id)


def _not_found(order_id: str) -> ProblemError:
    return ProblemError(404, "order-not-found", "Order not found", f"no order {order_id}")


def _timeline(session: Session, order_id: str) -> list[TimelineEntry]:
    query = (
        select(TimelineEntry).where(TimelineEntry.order_id == order_id).order_by(TimelineEntry.id)
    )
    return list(session.scalars(query))


def _return_out(order_return: OrderReturn, order_id: str) -> ReturnOut:
    return ReturnOut(
        return_id=order_return.return_id,
        order_id=order_id,
        status=order_return.status,
        reason=order_return.reason,
        lines=[ReturnLineOut.model_validate(line) for line in order_return.lines],
        received_lines=(
            [ReturnLineOut.model_validate(line) for line in order_return.received_lines]
            if order_return.received_lines is not None
            else None
        ),
        carrier=order_return.carrier,
        label_reference=order_return.label_reference,
        refund_amount=order_return.refund_amount,
        requested_at=order_return.requested_at,
        completed_at=order_return.completed_at,
    )


def _order_out(order: Order, timeline: list[TimelineEntry]) -> OrderOut:
    shipment = (
        ShipmentOut(
            shipment_id=order.shipment_id,
            carrier=order.carrier,
            tracking_number=order.tracking_number,
            dispatched_at=order.dispatched_at,
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
        refunded=order.refunded,
        placed_at=order.placed_at,
        completed_at=order.completed_at,
        deadline_at=order.deadline_at,
        awaiting=sorted(order.awaiting or {}),
        retry_attempts=order.retry_attempts,
        shipment=shipment,
        returns=[_return_out(r, order.order_id) for r in order.returns],
        timeline=[TimelineOut.model_validate(t, from_attributes=True) for t in timeline],
    )
