"""What the orders service publishes (and where) and what it consumes."""

from __future__ import annotations

EVENTS_TOPIC = "orders.events"
COMMANDS_TOPIC = "orders.commands"

PUBLISHES = {
    "OrderPlaced": EVENTS_TOPIC,
    "OrderCompleted": EVENTS_TOPIC,
    "OrderCancelled": EVENTS_TOPIC,
    "ReturnRequested": EVENTS_TOPIC,
    "OrderReturned": EVENTS_TOPIC,
    # Saga inputs from outside Kafka, recorded so the log alone can rebuild every order.
    "OrderCancellationRequested": EVENTS_TOPIC,
    "OrderDeadlinePassed": EVENTS_TOPIC,
    "ReleaseStock": COMMANDS_TOPIC,
    "RefundPayment": COMMANDS_TOPIC,
    "CancelShipment": COMMANDS_TOPIC,
    "IssueReturnLabel": COMMANDS_TOPIC,
    "RestockItems": COMMANDS_TOPIC,
}

CONSUMES_TOPICS = (
    "inventory.events",
    "payments.events",
    "fulfillment.events",
    "notifications.events",
)
