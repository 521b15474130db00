"""The fulfillment service's business metrics (catalog: docs/METRICS.md)."""

from __future__ import annotations

from prometheus_client import Counter

from kit.envelope import Envelope

shipments = Counter(
    "fulfillment_shipments_total",
    "Shipment steps: created, dispatched, delivered, cancelled",
    ["stage"],
)
returns_received = Counter(
    "fulfillment_returns_received_total", "Returned parcels the warehouse received"
)

_STAGE = {
    "ShipmentCreated": "created",
    "ShipmentDispatched": "dispatched",
    "ShipmentDelivered": "delivered",
}


def count_emitted(envelope: Envelope) -> None:
    stage = _STAGE.get(envelope.event_type)
    if stage is not None:  # each step is emitted once, when the shipment's status moves
        shipments.labels(stage).inc()
    elif envelope.event_type == "ReturnReceived":
        returns_received.inc()


def initialize() -> None:
    for stage in (*_STAGE.values(), "cancelled"):
        shipments.labels(stage)
