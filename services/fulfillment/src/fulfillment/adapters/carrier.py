"""The carrier port and a simulated carrier that books instantly and delivers on a timer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Booking:
    carrier: str
    tracking_number: str


class Carrier(Protocol):
    def book(self, shipment_id: str, address: dict[str, Any], parcels: int) -> Booking: ...


class SimulatedCarrier:
    name = "simulated-post"

    def book(self, shipment_id: str, address: dict[str, Any], parcels: int) -> Booking:
        digest = hashlib.sha256(shipment_id.encode()).hexdigest()[:12].upper()
        return Booking(self.name, f"SP{digest}{address.get('country', 'XX')}")
