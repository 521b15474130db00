from __future__ import annotations

EVENTS_TOPIC = "payments.events"

PUBLISHES = {
    "PaymentCaptured": EVENTS_TOPIC,
    "PaymentFailed": EVENTS_TOPIC,
    "PaymentRefunded": EVENTS_TOPIC,
}

CONSUMES_TOPICS = ("orders.events", "inventory.events")
