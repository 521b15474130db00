"""What a customer may ask of an order after placing it: to cancel it, to return goods."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from kit.unit_of_work import UnitOfWork
from orders import metrics
from orders.adapters.tables import Order, OrderReturn
from orders.domain.returns import (
    OrderedLine,
    ReturnLine,
    refund_id_for_return,
    validate_return,
    window_open,
)
from orders.domain.saga import CUSTOMER_RETURN, Input, OrderStatus, cancel_refusal
from orders.handlers.saga import Saga, saga_state
from orders.handlers.saga_inputs import (
    customer_return_arrival,
    feed_cancellation_request,
    record_cancellation_request,
)


class OrderNotFoundError(LookupError):
    pass


class RequestRefusedError(Exception):
    """The order's state does not allow the request; `kind` names why, for clients."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _locked_order(uow: UnitOfWork, order_id: str, client_id: str) -> Order:
    order = uow.session.get(Order, order_id, with_for_update=True)
    if order is None or order.client_id != client_id:  # another client's order: not found
        raise OrderNotFoundError(order_id)
    return order


def request_cancellation(uow: UnitOfWork, saga: Saga, client_id: str, order_id: str) -> None:
    order = _locked_order(uow, order_id, client_id)
    if cancel_refusal(saga_state(order)):
        raise RequestRefusedError(
            "cancel-too-late",
            "The order has been dispatched and can no longer be cancelled. Once it is "
            f"delivered, request a return: POST /v1/orders/{order_id}/returns.",
        )
    request = record_cancellation_request(uow, order)
    feed_cancellation_request(uow, saga, order, request)


def request_return(
    uow: UnitOfWork,
    saga: Saga,
    client_id: str,
    order_id: str,
    lines: Sequence[ReturnLine],
    reason: str,
) -> OrderReturn:
    """Raises OrderNotFoundError, RequestRefusedError, or ReturnError (lines that can't go)."""
    order = _locked_order(uow, order_id, client_id)
    status = OrderStatus(order.status)
    if status in (OrderStatus.RETURN_REQUESTED, OrderStatus.RETURNING):
        raise RequestRefusedError(
            "return-in-progress", "A return of this order is in progress; one at a time."
        )
    if status not in (OrderStatus.COMPLETED, OrderStatus.RETURNED):
        raise RequestRefusedError(
            "order-not-delivered",
            f"The order is {status}; only delivered orders can be returned.",
        )
    now = datetime.now(UTC)
    if not window_open(order.completed_at, now, saga.return_window):
        raise RequestRefusedError(
            "return-window-closed",
            f"Returns are accepted for {saga.return_window} after delivery; "
            f"this order was delivered at {order.completed_at:%Y-%m-%d %H:%M} UTC.",
        )
    came_back = [
        ReturnLine(line["sku"], line["quantity"])
        for earlier in order.returns
        for line in earlier.received_lines or ()
    ]
    ordered = [OrderedLine(line.sku, line.quantity, line.unit_price) for line in order.lines]
    accepted = validate_return(ordered, came_back, lines)
    order_return = open_return(uow, saga, order, str(uuid.uuid4()), accepted, reason, now)
    uow.after_commit(metrics.orders_return_requests.inc)
    return order_return


def open_return(
    uow: UnitOfWork,
    saga: Saga,
    order: Order,
    return_id: str,
    lines: Sequence[ReturnLine],
    reason: str,
    now: datetime,
) -> OrderReturn:
    """An accepted return becomes the order's active one and goes to the saga (which emits
    ReturnRequested); a replay opens the recorded ReturnRequested's return the same way."""
    order_return = OrderReturn(
        return_id=return_id,
        status="requested",
        reason=reason,
        lines=[{"sku": line.sku, "quantity": line.quantity} for line in lines],
        refund_id=refund_id_for_return(return_id),
        requested_at=now,
    )
    order.returns.append(order_return)
    order.active_return_id = return_id
    arrival = customer_return_arrival(return_id, now)
    saga.advance(uow, order, Input(CUSTOMER_RETURN, reference=return_id), arrival)
    return order_return
