"""Prices come from the catalog copy, never from the client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    sku: str
    name: str
    unit_price: int
    currency: str
    active: bool


@dataclass(frozen=True)
class RequestedLine:
    sku: str
    quantity: int


@dataclass(frozen=True)
class PricedLine:
    sku: str
    name: str
    quantity: int
    unit_price: int

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    currency: str
    subtotal: int
    shipping: int

    @property
    def total(self) -> int:
        return self.subtotal + self.shipping


@dataclass(frozen=True)
class LineProblem:
    index: int
    sku: str
    message: str


class PricingError(ValueError):
    def __init__(self, problems: Sequence[LineProblem]) -> None:
        super().__init__("; ".join(f"lines[{p.index}] {p.sku}: {p.message}" for p in problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class ShippingPolicy:
    flat_fee: int
    free_from_subtotal: int

    def fee(self, subtotal: int) -> int:
        return 0 if subtotal >= self.free_from_subtotal else self.flat_fee


def quote(
    lines: Sequence[RequestedLine], catalog: Mapping[str, CatalogEntry], shipping: ShippingPolicy
) -> Quote:
    problems: list[LineProblem] = []
    priced: list[PricedLine] = []
    for index, line in enumerate(lines):
        entry = catalog.get(line.sku)
        if entry is None:
            problems.append(LineProblem(index, line.sku, "unknown SKU"))
        elif not entry.active:
            problems.append(LineProblem(index, line.sku, "SKU is not for sale"))
        else:
            priced.append(PricedLine(entry.sku, entry.name, line.quantity, entry.unit_price))
    currencies = {catalog[p.sku].currency for p in priced}
    if len(currencies) > 1:
        problems.append(
            LineProblem(0, "", f"lines are priced in several currencies: {sorted(currencies)}")
        )
    if problems:
        raise PricingError(problems)
    subtotal = sum(p.amount for p in priced)
    return Quote(tuple(priced), currencies.pop(), subtotal, shipping.fee(subtotal))
