"""The orders service's business and saga metrics (catalog: docs/METRICS.md).

Money is exported in the currency's major unit; the database keeps integer minor units.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

orders_placed = Counter("orders_placed_total", "Orders accepted by the gateway")
orders_placed_amount = Counter(
    "orders_placed_amount_total", "Value of accepted orders", ["currency"]
)
orders_completed = Counter("orders_completed_total", "Orders that reached COMPLETED")
orders_revenue_amount = Counter(
    "orders_revenue_amount_total", "Value of completed (delivered) orders", ["currency"]
)
orders_cancelled = Counter("orders_cancelled_total", "Orders that reached CANCELLED", ["reason"])
orders_return_requests = Counter("orders_return_requests_total", "Returns requested by customers")
orders_returned = Counter("orders_returned_total", "Returns completed (restocked and refunded)")
orders_refunded_amount = Counter(
    "orders_refunded_amount_total", "Money refunded to customers", ["currency"]
)
order_e2e_seconds = Histogram(
    "order_placed_to_completed_seconds",
    "Time from the gateway accepting an order to the saga marking it COMPLETED",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 300),
)

order_processing_seconds = Histogram(
    "order_placed_to_fulfilling_seconds",
    "The pipeline's own part of an order's life: gateway accepting it to the parcel handed to "
    "the carrier (stock reserved, payment captured, shipment created); carrier time excluded",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 300),
)

saga_orders = Gauge("saga_orders", "Orders in each saga state", ["state"])
saga_state_seconds = Histogram(
    "saga_state_duration_seconds",
    "Time an order spent in a saga state, observed when it leaves the state",
    ["state"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
saga_compensations = Counter(
    "saga_compensations_total", "Compensations started, by cancel reason", ["reason"]
)
saga_deadlines = Counter(
    "saga_deadlines_total", "Orders compensated because a step missed its deadline", ["step"]
)
saga_commands_resent = Counter(
    "saga_commands_resent_total", "Compensation/return commands re-sent unacknowledged", ["command"]
)
saga_inputs_ignored = Counter(
    "saga_inputs_ignored_total",
    "Stale, late or repeated inputs the saga recorded and ignored",
    ["event_type"],
)
saga_stuck_orders = Gauge(
    "saga_stuck_orders",
    "Orders in a non-terminal state for longer than STUCK_ORDER_AGE",
    ["state"],
)


# Label values known in advance start at 0, so a dashboard shows "0 compensations for
# declined cards" rather than "no data" until the first one happens.
PAYMENT_FAILURE_REASONS = (
    "declined",
    "insufficient_funds",
    "provider_error",
    "provider_timeout",
    "fraud_rejected",
)
CANCEL_REASONS = (
    "out_of_stock",
    "customer_cancelled",
    *PAYMENT_FAILURE_REASONS,
    *(f"{step}_deadline_exceeded" for step in ("stock", "payment", "shipment")),
)


def initialize(
    states: tuple[str, ...],
    steps: tuple[str, ...],
    commands: tuple[str, ...],
    inputs: tuple[str, ...],
) -> None:
    for reason in CANCEL_REASONS:
        orders_cancelled.labels(reason)
        saga_compensations.labels(reason)
    for step in steps:
        saga_deadlines.labels(step)
    for command in commands:
        saga_commands_resent.labels(command)
    for state in states:
        saga_state_seconds.labels(state)
    for event_type in inputs:
        saga_inputs_ignored.labels(event_type)
