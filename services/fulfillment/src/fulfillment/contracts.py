from __future__ import annotations

EVENTS_TOPIC = "fulfillment.events"

PUBLISHES = {
    "ShipmentCreated": EVENTS_TOPIC,
    "ShipmentDispatched": EVENTS_TOPIC,
    "ShipmentDelivered": EVENTS_TOPIC,
    "ShipmentCancelled": EVENTS_TOPIC,
}

CONSUMES_TOPICS = ("orders.events", "payments.events")
