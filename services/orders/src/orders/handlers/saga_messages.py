"""The payload of every message the saga emits, built from the order as it stands."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orders.adapters.tables import Order, OrderReturn
from orders.domain.returns import refund_id_for_cancellation

CANCEL_DETAILS = {
    "out_of_stock": "Not enough stock for at least one line.",
    "declined": "The payment was declined.",
    "insufficient_funds": "The payment was declined for insufficient funds.",
    "provider_error": "The payment provider failed.",
    "provider_timeout": "The payment provider did not answer.",
    "fraud_rejected": "The payment was rejected by fraud screening.",
    "customer_cancelled": "Cancelled at the customer's request.",
    "stock_deadline_exceeded": "Inventory did not confirm the stock in time.",
    "payment_deadline_exceeded": "The payment was not confirmed in time.",
    "shipment_deadline_exceeded": "The shipment was not created in time.",
}


def payload_for(
    message_type: str, order: Order, active_return: OrderReturn | None, now: datetime
) -> dict[str, Any]:
    reason = order.cancel_reason or "unknown"
    if active_return is not None and message_type in _RETURN_MESSAGES:
        return _return_payload(message_type, order, active_return, now)
    match message_type:
        case "OrderCompleted":
            return {"order_id": order.order_id, "completed_at": now}
        case "OrderCancelled":
            detail = CANCEL_DETAILS.get(reason, reason.replace("_", " "))
            return {
                "order_id": order.order_id,
                "reason": reason,
                "detail": detail,
                "cancelled_at": now,
            }
        case "ReleaseStock" | "CancelShipment":
            return {"order_id": order.order_id, "reason": reason}
        case "RefundPayment":
            # Everything the order could have cost; payments refunds at most what it took.
            return {
                "order_id": order.order_id,
                "refund_id": refund_id_for_cancellation(order.order_id),
                "amount": order.total,
                "currency": order.currency,
                "reason": reason,
            }
    raise ValueError(f"the saga has no payload for {message_type}")


_RETURN_MESSAGES = frozenset(
    {"ReturnRequested", "IssueReturnLabel", "RestockItems", "RefundPayment", "OrderReturned"}
)


def _return_payload(
    message_type: str, order: Order, active: OrderReturn, now: datetime
) -> dict[str, Any]:
    ids = {"order_id": order.order_id, "return_id": active.return_id}
    match message_type:
        case "ReturnRequested":
            return {**ids, "lines": active.lines, "reason": active.reason, "requested_at": now}
        case "IssueReturnLabel":
            return {**ids, "lines": active.lines}
        case "RestockItems":
            return {**ids, "lines": active.received_lines or []}
        case "RefundPayment":
            return {
                "order_id": order.order_id,
                "refund_id": active.refund_id,
                "amount": active.refund_amount or 0,
                "currency": order.currency,
                "reason": "return",
            }
        case _:  # OrderReturned
            return {
                **ids,
                "refunded_amount": active.refund_amount or 0,
                "currency": order.currency,
                "returned_at": now,
            }
