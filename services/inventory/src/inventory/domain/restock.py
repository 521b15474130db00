"""Returned goods go back where they left from, never more than left. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inventory.domain.allocation import Allocation, Line


@dataclass(frozen=True)
class Shipped:
    """Units of one SKU that left one warehouse for an order, and how many came back so far."""

    sku: str
    warehouse: str
    quantity: int
    restocked: int

    @property
    def returnable(self) -> int:
        return self.quantity - self.restocked


@dataclass(frozen=True)
class Excess:
    """More of a SKU came back than the order shipped and had not yet returned."""

    sku: str
    returned: int
    restocked: int


def plan_restock(
    lines: Sequence[Line], shipped: Sequence[Shipped]
) -> tuple[list[Allocation], list[Excess]]:
    """Where each returned unit goes, and what cannot be restocked.

    Each SKU fills the warehouses it left from, in name order, each up to what it shipped
    less what earlier returns put back. Units beyond that never left for this order (or were
    returned before): restocking them would invent stock, so they are reported instead.
    Lines repeating a SKU are summed first, like a reservation's.
    """
    returned: dict[str, int] = {}
    for line in lines:
        returned[line.sku] = returned.get(line.sku, 0) + line.quantity
    allocations: list[Allocation] = []
    excess: list[Excess] = []
    for sku, quantity in returned.items():
        remaining = quantity
        for share in sorted((s for s in shipped if s.sku == sku), key=lambda s: s.warehouse):
            take = min(share.returnable, remaining)
            if take > 0:
                allocations.append(Allocation(sku, share.warehouse, take))
                remaining -= take
        if remaining > 0:
            excess.append(Excess(sku, quantity, quantity - remaining))
    return allocations, excess
