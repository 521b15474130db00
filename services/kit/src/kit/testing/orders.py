"""Request bodies for the gateway, shared by the integration tests, the bench and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def order_body(
    lines: Sequence[tuple[str, int]], token: str = "tok_visa", customer: str = "c-1"
) -> dict[str, Any]:
    """A valid `POST /v1/orders` body for (sku, quantity) lines."""
    return {
        "customer": {"id": customer, "email": f"{customer}@example.com", "name": "Test Customer"},
        "shipping_address": {
            "name": "Test Customer",
            "line1": "1 Test Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        "payment_token": token,
    }
