"""What a returned parcel may contain: only SKUs on its label, never more than authorized."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReturnLine:
    sku: str
    quantity: int

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ReturnLine:
        return cls(str(record["sku"]), int(record["quantity"]))

    def as_record(self) -> dict[str, Any]:
        return {"sku": self.sku, "quantity": self.quantity}


@dataclass(frozen=True)
class LineProblem:
    sku: str
    message: str


def merged(lines: Iterable[ReturnLine]) -> list[ReturnLine]:
    """One line per SKU, quantities added up, in the order the SKUs first appear."""
    quantities: dict[str, int] = {}
    for line in lines:
        quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
    return [ReturnLine(sku, quantity) for sku, quantity in quantities.items()]


def received_line_problems(
    authorized: Iterable[ReturnLine], received: Iterable[ReturnLine]
) -> list[LineProblem]:
    """Why the received lines cannot be accepted against the label; empty when they can.

    Fewer units than authorized (or none at all) is a legitimate outcome: the customer kept
    something or the parcel was short."""
    allowed = {line.sku: line.quantity for line in merged(authorized)}
    problems = []
    for line in merged(received):
        if line.sku not in allowed:
            problems.append(LineProblem(line.sku, f"{line.sku} is not on the return label"))
        elif line.quantity > allowed[line.sku]:
            problems.append(
                LineProblem(
                    line.sku,
                    f"{line.quantity} x {line.sku} received but only "
                    f"{allowed[line.sku]} authorized",
                )
            )
    return problems
