"""The carrier port and a simulated carrier that books instantly and delivers on a timer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Booking:
    carrier: str
    tracking_number: str


@dataclass(frozen=True)
class ReturnLabel:
    carrier: str
    label_reference: str


class Carrier(Protocol):
    def book(self, shipment_id: str, address: dict[str, Any], parcels: int) -> Booking: ...

    def issue_return_label(self, return_id: str, address: dict[str, Any]) -> ReturnLabel:
        """`address` is where the parcel is picked up: the customer's shipping address."""
        ...


class SimulatedCarrier:
    name = "simulated-post"

    def book(self, shipment_id: str, address: dict[str, Any], parcels: int) -> Booking:
        digest = hashlib.sha256(shipment_id.encode()).hexdigest()[:12].upper()
        return Booking(self.name, f"SP{digest}{address.get('country', 'XX')}")

    def issue_return_label(self, return_id: str, address: dict[str, Any]) -> ReturnLabel:
        # Derived from the return alone, so asking twice for one return gives the same label.
        digest = hashlib.sha256(return_id.encode()).hexdigest()[:12].upper()
        return ReturnLabel(self.name, f"RL{digest}")
