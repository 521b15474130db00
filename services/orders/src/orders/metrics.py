from __future__ import annotations

from prometheus_client import Counter, Histogram

orders_placed = Counter("orders_placed_total", "Orders accepted by the gateway")
orders_completed = Counter("orders_completed_total", "Orders that reached COMPLETED")
orders_cancelled = Counter("orders_cancelled_total", "Orders that reached CANCELLED", ["reason"])
orders_returned = Counter("orders_returned_total", "Returns completed (restocked and refunded)")
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
order_e2e_seconds = Histogram(
    "order_placed_to_completed_seconds",
    "Time from the gateway accepting an order to the saga marking it COMPLETED",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
