from __future__ import annotations

EVENTS_TOPIC = "payments.events"

PUBLISHES = {
    "PaymentCaptured": EVENTS_TOPIC,
    "PaymentFailed": EVENTS_TOPIC,
    "PaymentRefunded": EVENTS_TOPIC,
}

# orders.commands: RefundPayment (the other commands there are skipped unread).
CONSUMES_TOPICS = ("orders.events", "orders.commands", "inventory.events")
