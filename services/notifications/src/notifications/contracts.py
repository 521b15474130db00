from __future__ import annotations

EVENTS_TOPIC = "notifications.events"

PUBLISHES = {"NotificationSent": EVENTS_TOPIC}

# payments.events: PaymentRefunded, for the refund notification.
CONSUMES_TOPICS = ("orders.events", "fulfillment.events", "payments.events")
