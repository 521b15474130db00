"""Returns and refunds: what may still be returned, and how much a return refunds.

Amounts are integer minor units. A return refunds the unit price of every unit that came
back; the shipping fee is refunded only by the return that brings back the order's last
unit (a customer who returns everything gets everything back, one who keeps something
paid for its delivery).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class OrderedLine:
    sku: str
    quantity: int
    unit_price: int


@dataclass(frozen=True)
class ReturnLine:
    sku: str
    quantity: int


class ReturnError(ValueError):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


def refund_id_for_cancellation(order_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"refund:cancel:{order_id}"))


def refund_id_for_return(return_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"refund:return:{return_id}"))


def window_open(delivered_at: datetime | None, now: datetime, window: timedelta) -> bool:
    return delivered_at is not None and now <= delivered_at + window


def _quantities(lines: Iterable[OrderedLine | ReturnLine]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for line in lines:
        totals[line.sku] += line.quantity
    return totals


def returnable(ordered: Sequence[OrderedLine], returned: Sequence[ReturnLine]) -> Counter[str]:
    """Units of each SKU that have not come back yet."""
    left = _quantities(ordered)
    left.subtract(_quantities(returned))
    return +left  # drops SKUs with nothing left


def validate_return(
    ordered: Sequence[OrderedLine],
    returned: Sequence[ReturnLine],
    requested: Sequence[ReturnLine],
) -> tuple[ReturnLine, ...]:
    """The requested lines, one per SKU; raises ReturnError naming every line that can't be."""
    left = returnable(ordered, returned)
    ordered_skus = {line.sku for line in ordered}
    wanted = _quantities(requested)
    problems = []
    for sku, quantity in wanted.items():
        if sku not in ordered_skus:
            problems.append(f"{sku}: not in this order")
        elif quantity > left[sku]:
            problems.append(f"{sku}: {quantity} requested, {left[sku]} can still be returned")
    if problems:
        raise ReturnError(problems)
    return tuple(ReturnLine(sku, quantity) for sku, quantity in wanted.items())


def refund_for(
    ordered: Sequence[OrderedLine],
    returned_before: Sequence[ReturnLine],
    received: Sequence[ReturnLine],
    shipping: int,
) -> int:
    """What the return of `received` refunds, given what came back before it."""
    price = {line.sku: line.unit_price for line in ordered}
    amount = sum(line.quantity * price[line.sku] for line in received if line.sku in price)
    everything_back = not returnable(ordered, [*returned_before, *received])
    return amount + (shipping if everything_back else 0)
