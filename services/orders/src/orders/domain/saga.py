"""The order saga as a pure state machine: (status, event) -> decision. No I/O here.

Events about one order arrive from several topics, so a later step can overtake an earlier
one (PaymentCaptured before StockReserved). Forward events therefore move the order to the
furthest step they imply, and anything that implies no progress is recorded and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    PAID = "PAID"
    FULFILLING = "FULFILLING"
    COMPLETED = "COMPLETED"
    COMPENSATING = "COMPENSATING"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})

# The happy path in order; an event moves the order to its step if that is further along.
FORWARD_PATH = (
    OrderStatus.PENDING,
    OrderStatus.RESERVED,
    OrderStatus.PAID,
    OrderStatus.FULFILLING,
    OrderStatus.COMPLETED,
)
FORWARD_EVENTS = {
    "StockReserved": OrderStatus.RESERVED,
    "PaymentCaptured": OrderStatus.PAID,
    "ShipmentCreated": OrderStatus.FULFILLING,
    "ShipmentDispatched": OrderStatus.FULFILLING,
    "ShipmentDelivered": OrderStatus.COMPLETED,
}


@dataclass(frozen=True)
class Decision:
    status: OrderStatus
    emit: tuple[str, ...] = ()
    cancel_reason: str | None = None
    ignored: str | None = None

    @property
    def changed(self) -> bool:
        return self.ignored is None


def decide(status: OrderStatus, event_type: str, *, failure_reason: str = "") -> Decision:
    """What the saga does when `event_type` arrives for an order in `status`."""
    if event_type in FORWARD_EVENTS:
        return _forward(status, FORWARD_EVENTS[event_type])
    if event_type == "StockReservationFailed":
        if status is OrderStatus.PENDING:
            return Decision(
                OrderStatus.CANCELLED, ("OrderCancelled",), cancel_reason="out_of_stock"
            )
        return Decision(status, ignored=f"stock failure after the order reached {status}")
    if event_type == "PaymentFailed":
        if status in (OrderStatus.PENDING, OrderStatus.RESERVED):
            return Decision(
                OrderStatus.COMPENSATING,
                ("ReleaseStock",),
                cancel_reason=failure_reason or "payment_failed",
            )
        return Decision(status, ignored=f"payment failure after the order reached {status}")
    if event_type == "StockReleased":
        if status is OrderStatus.COMPENSATING:
            return Decision(OrderStatus.CANCELLED, ("OrderCancelled",))
        return Decision(status, ignored=f"stock release while {status}")
    return Decision(status, ignored="recorded in the timeline only")


def _forward(status: OrderStatus, target: OrderStatus) -> Decision:
    if status not in FORWARD_PATH:
        return Decision(status, ignored=f"stale: the order is {status}")
    if FORWARD_PATH.index(target) <= FORWARD_PATH.index(status):
        return Decision(status, ignored=f"already {status}")
    emit = ("OrderCompleted",) if target is OrderStatus.COMPLETED else ()
    return Decision(target, emit)
