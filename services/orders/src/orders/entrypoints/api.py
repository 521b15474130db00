"""The storefront gateway: thin translation between HTTP and the orders use cases.

Every route needs an API key (`Authorization: Bearer …`) with the route's scope; a client
sees only its own orders. Every POST needs an `Idempotency-Key`; its first successful
response is stored with the effect, in one transaction, and replayed to retries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from kit import tracing
from kit.api import NUL_FREE, RuntimeDep
from kit.problems import ProblemError
from kit.service import Runtime
from kit.unit_of_work import UnitOfWork
from orders.adapters.tables import Order, OrderReturn, TimelineEntry
from orders.domain.pricing import PricingError, RequestedLine, ShippingPolicy
from orders.domain.returns import ReturnError, ReturnLine
from orders.entrypoints.auth import AUTH_RESPONSES, Caller, ReadCaller, WriteCaller
from orders.entrypoints.idempotency import (
    IDEMPOTENCY_RESPONSES,
    IdempotentRequestDep,
    Rendered,
    run_idempotent,
)
from orders.entrypoints.limits import (
    BODY_SIZE_RESPONSES,
    CUSTOMER_LIMIT_RESPONSES,
    RATE_LIMIT_RESPONSES,
    check_customer_limits,
    client_rate_limiter,
)
from orders.entrypoints.listing import (
    LIST_ORDERS_RESPONSES,
    OrderListQueryDep,
    OrderPage,
    list_orders,
)
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
from orders.entrypoints.waiting import WaitQueryDep, status_reader, wait_for_change
from orders.handlers.customer_requests import (
    OrderNotFoundError,
    RequestRefusedError,
    request_cancellation,
    request_return,
)
from orders.handlers.placing import PlaceOrder, place_order
from orders.handlers.saga import Saga
from orders.settings import OrdersSettings

T = TypeVar("T")
_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
# Documented on every route: FastAPI's own 422 entry describes its JSON error body, but the
# gateway answers every error as problem+json (kit.problems).
VALIDATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid request: `errors` names each field", "content": _PROBLEM},
}
NOT_FOUND_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such order of this client (`order-not-found`)", "content": _PROBLEM},
}
OrderIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=NUL_FREE)]
POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **IDEMPOTENCY_RESPONSES,
    **RATE_LIMIT_RESPONSES,
    **BODY_SIZE_RESPONSES,
}
router = APIRouter(
    prefix="/v1",
    tags=["orders"],
    responses={**AUTH_RESPONSES, **RATE_LIMIT_RESPONSES, **VALIDATION_RESPONSES},
)


def get_settings(runtime: RuntimeDep) -> OrdersSettings:
    settings = runtime.settings
    if not isinstance(settings, OrdersSettings):
        raise TypeError("the orders API needs OrdersSettings")
    return settings


SettingsDep = Annotated[OrdersSettings, Depends(get_settings)]


def rate_limited(caller: Caller, settings: OrdersSettings) -> None:
    client_rate_limiter(settings.rate_limit).check_rate(caller.client_id)


async def _idempotent(
    runtime: Runtime,
    settings: OrdersSettings,
    caller: Caller,
    idempotency: Any,
    work: Callable[[UnitOfWork], T],
    render: Callable[[T], Rendered],
) -> JSONResponse:
    return await run_idempotent(
        runtime, caller.client_id, idempotency, work, render, ttl=settings.idempotency_ttl
    )


@router.post(
    "/orders",
    status_code=202,
    response_model=OrderOut,
    responses={**POST_RESPONSES, **CUSTOMER_LIMIT_RESPONSES},
)
async def create_order(
    body: OrderIn,
    caller: WriteCaller,
    idempotency: IdempotentRequestDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    traceparent: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Places an order. Prices, shipping and totals come from the catalog, never the client.
    202 once the order and its OrderPlaced are committed (Kafka need not be up)."""
    rate_limited(caller, settings)
    command = PlaceOrder(
        order_id=str(uuid.uuid4()),
        client_id=caller.client_id,
        customer_id=body.customer.id,
        customer_email=str(body.customer.email),
        customer_name=body.customer.name,
        shipping_address=body.shipping_address.model_dump(),
        lines=tuple(RequestedLine(line.sku, line.quantity) for line in body.lines),
        payment_token=body.payment_token,
        notes=body.notes,
        client_metadata=dict(body.metadata),
        sales_channel=body.sales_channel,
        # The request's place in its trace (kit.tracing.TraceRequests): its SERVER span, or
        # with tracing off a span id of its own in the caller's trace.
        traceparent=tracing.current_traceparent() or traceparent,
    )
    shipping = ShippingPolicy(settings.shipping_flat_fee, settings.free_shipping_from)

    def place(uow: UnitOfWork) -> Order:
        check_customer_limits(
            uow.session,
            caller.client_id,
            body.customer.id,
            command.lines,
            settings.max_open_orders_per_customer,
            settings.max_quantity_per_sku,
        )
        order = place_order(uow, command, shipping, settings.stock_deadline)
        if body.currency is not None and body.currency != order.currency:
            raise ProblemError(
                422,
                "currency-mismatch",
                "The catalog prices these lines in another currency",
                f"the lines are priced in {order.currency}, not {body.currency}",
                errors=[{"field": "currency", "message": f"the catalog uses {order.currency}"}],
            )
        return order

    def render(order: Order) -> Rendered:
        out = _order_out(order, order.timeline).model_dump(mode="json")
        return Rendered(202, out, f"/v1/orders/{order.order_id}")

    try:
        response = await _idempotent(runtime, settings, caller, idempotency, place, render)
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
    return response


@router.get("/orders", response_model=OrderPage, responses=LIST_ORDERS_RESPONSES)
def list_my_orders(
    query: OrderListQueryDep, caller: ReadCaller, runtime: RuntimeDep, settings: SettingsDep
) -> OrderPage:
    """The caller's orders, newest first, a page at a time: follow `next_cursor`."""
    rate_limited(caller, settings)
    with runtime.read_session_factory() as session:
        return list_orders(session, caller.client_id, query.filters, query.limit, query.cursor)


@router.get("/orders/{order_id}", response_model=OrderOut, responses=NOT_FOUND_RESPONSES)
async def get_order(
    order_id: OrderIdPath,
    waiting: WaitQueryDep,
    caller: ReadCaller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    request: Request,
) -> OrderOut:
    """The order: status, lines, totals, shipment, returns and timeline.

    Long-poll: `?wait=30&status=PAID` answers as soon as the status is no longer PAID, or
    after `wait` seconds with the order unchanged — 200 either way; compare `status`."""
    rate_limited(caller, settings)
    if waiting.wait_s > 0:
        seen = await wait_for_change(
            status_reader(runtime.read_session_factory, order_id, caller.client_id),
            waiting.known_status,
            min(waiting.wait_s, settings.long_poll_max_wait.total_seconds()),
            settings.long_poll_interval_s,
            disconnected=request.is_disconnected,
        )
        if seen is None:
            raise _not_found(order_id)
    return await asyncio.to_thread(_read_order, runtime, caller.client_id, order_id)


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    response_model=OrderOut,
    responses={
        **POST_RESPONSES,
        **NOT_FOUND_RESPONSES,
        409: {
            "description": "Dispatched already: request a return instead (`cancel-too-late`), "
            "or the same Idempotency-Key is still being processed",
            "content": _PROBLEM,
        },
    },
)
async def cancel_order(
    order_id: OrderIdPath,
    caller: WriteCaller,
    idempotency: IdempotentRequestDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Cancels the order, undoing whatever had happened (shipment, payment, stock reservation).

    Accepted until the shipment is dispatched; the order then shows COMPENSATING and the
    acknowledgements it waits for, and ends CANCELLED. Asking again is harmless."""
    rate_limited(caller, settings)
    saga = Saga(settings)

    def cancel(uow: UnitOfWork) -> Order:
        request_cancellation(uow, saga, caller.client_id, order_id)
        order = uow.session.get(Order, order_id)
        assert order is not None
        return order

    def render(order: Order) -> Rendered:
        out = _order_out(order, _timeline(_session_of(order), order_id))
        return Rendered(202, out.model_dump(mode="json"), f"/v1/orders/{order_id}")

    try:
        return await _idempotent(runtime, settings, caller, idempotency, cancel, render)
    except OrderNotFoundError as error:
        raise _not_found(order_id) from error
    except RequestRefusedError as error:
        raise ProblemError(
            409, error.kind, "The order can no longer be cancelled", error.detail
        ) from error


@router.post(
    "/orders/{order_id}/returns",
    status_code=202,
    response_model=ReturnOut,
    responses={
        **POST_RESPONSES,
        **NOT_FOUND_RESPONSES,
        409: {
            "description": "Not delivered, a return in progress, or window closed; or the "
            "same Idempotency-Key is still being processed",
            "content": _PROBLEM,
        },
    },
)
async def return_goods(
    order_id: OrderIdPath,
    body: ReturnIn,
    caller: WriteCaller,
    idempotency: IdempotentRequestDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Starts a return of some or all delivered lines; the return label follows shortly
    (GET the order: `returns[].label_reference`)."""
    rate_limited(caller, settings)
    saga = Saga(settings)
    lines = [ReturnLine(line.sku, line.quantity) for line in body.lines]

    def start_return(uow: UnitOfWork) -> OrderReturn:
        return request_return(uow, saga, caller.client_id, order_id, lines, body.reason)

    def render(order_return: OrderReturn) -> Rendered:
        out = _return_out(order_return, order_id).model_dump(mode="json")
        return Rendered(202, out, f"/v1/orders/{order_id}")

    try:
        return await _idempotent(runtime, settings, caller, idempotency, start_return, render)
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


def _session_of(order: Order) -> Session:
    session = Session.object_session(order)
    assert session is not None
    return session


def _read_order(runtime: Runtime, client_id: str, order_id: str) -> OrderOut:
    with runtime.read_session_factory() as session:
        order = session.get(Order, order_id)
        if order is None or order.client_id != client_id:
            raise _not_found(order_id)
        return _order_out(order, _timeline(session, order_id))


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
        tax=0,
        total=order.total,
        refunded=order.refunded,
        placed_at=order.placed_at,
        completed_at=order.completed_at,
        deadline_at=order.deadline_at,
        awaiting=sorted(order.awaiting or {}),
        retry_attempts=order.retry_attempts,
        shipment=shipment,
        returns=[_return_out(r, order.order_id) for r in order.returns],
        notes=order.notes,
        metadata=dict(order.client_metadata or {}),
        timeline=[TimelineOut.model_validate(t, from_attributes=True) for t in timeline],
    )
