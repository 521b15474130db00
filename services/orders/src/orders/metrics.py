from __future__ import annotations

from prometheus_client import Counter, Histogram

orders_placed = Counter("orders_placed_total", "Orders accepted by the gateway")
orders_completed = Counter("orders_completed_total", "Orders that reached COMPLETED")
orders_cancelled = Counter("orders_cancelled_total", "Orders that reached CANCELLED", ["reason"])
order_e2e_seconds = Histogram(
    "order_placed_to_completed_seconds",
    "Time from the gateway accepting an order to the saga marking it COMPLETED",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
