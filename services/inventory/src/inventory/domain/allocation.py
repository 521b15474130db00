"""Reserving stock for an order: all lines or none, never below zero. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Allocation:
    sku: str
    warehouse: str
    quantity: int


@dataclass(frozen=True)
class Shortage:
    sku: str
    requested: int
    available: int


def allocate(
    lines: Sequence[Line], available: Mapping[str, Mapping[str, int]]
) -> tuple[list[Allocation], list[Shortage]]:
    """Splits each line over warehouses (by name) or reports every short SKU.

    `available` is sku -> warehouse -> units free to reserve. Lines repeating a SKU are
    summed first, so two lines cannot both claim the same last unit.
    """
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    shortages = [
        Shortage(sku, quantity, sum(available.get(sku, {}).values()))
        for sku, quantity in wanted.items()
        if sum(available.get(sku, {}).values()) < quantity
    ]
    if shortages:
        return [], shortages
    allocations = []
    for sku, quantity in wanted.items():
        remaining = quantity
        for warehouse, free in sorted(available[sku].items()):
            take = min(free, remaining)
            if take > 0:
                allocations.append(Allocation(sku, warehouse, take))
                remaining -= take
            if remaining == 0:
                break
    return allocations, []
