from __future__ import annotations

EVENTS_TOPIC = "inventory.events"

PUBLISHES = {
    "CatalogItemUpdated": EVENTS_TOPIC,
    "StockReserved": EVENTS_TOPIC,
    "StockReservationFailed": EVENTS_TOPIC,
    "StockReleased": EVENTS_TOPIC,
    "StockRestocked": EVENTS_TOPIC,
    "LowStockDetected": EVENTS_TOPIC,
}

# fulfillment.events: a dispatched shipment turns its reservation into stock that left.
CONSUMES_TOPICS = ("orders.events", "orders.commands", "fulfillment.events")
