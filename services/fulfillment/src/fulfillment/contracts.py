from __future__ import annotations

EVENTS_TOPIC = "fulfillment.events"

PUBLISHES = {
    "ShipmentCreated": EVENTS_TOPIC,
    "ShipmentDispatched": EVENTS_TOPIC,
    "ShipmentDelivered": EVENTS_TOPIC,
    "ShipmentCancelled": EVENTS_TOPIC,
    "ReturnLabelIssued": EVENTS_TOPIC,
    "ReturnReceived": EVENTS_TOPIC,
}

# orders.commands: CancelShipment and IssueReturnLabel from the orders saga.
CONSUMES_TOPICS = ("orders.events", "orders.commands", "payments.events")
