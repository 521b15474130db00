from __future__ import annotations

EVENTS_TOPIC = "notifications.events"

PUBLISHES = {"NotificationSent": EVENTS_TOPIC}

CONSUMES_TOPICS = ("orders.events", "fulfillment.events")
