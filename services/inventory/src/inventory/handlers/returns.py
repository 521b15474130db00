"""Returned goods go back on the shelf they left from, once per return."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from inventory.adapters.tables import Reservation, Restock
from inventory.domain.allocation import Allocation, Line
from inventory.domain.restock import Shipped, plan_restock
from inventory.handlers.stock import lock_stock
from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def restock_returned_items(envelope: Envelope, uow: UnitOfWork) -> None:
    payload = envelope.payload
    restock = uow.session.get(Restock, payload["return_id"], with_for_update=True)
    if restock is None:
        lines = [Line(line["sku"], line["quantity"]) for line in payload["lines"]]
        restock = _restock(uow, payload["order_id"], payload["return_id"], lines)
    # A repeated command (the saga re-sends it until it sees this answer) restocks nothing
    # and is answered from the record, so every answer for one return says the same.
    uow.emit(
        envelope.caused(
            "StockRestocked",
            {"order_id": restock.order_id, "return_id": restock.return_id, "lines": restock.lines},
            producer=uow.service_name,
        )
    )


def _restock(uow: UnitOfWork, order_id: str, return_id: str, lines: Sequence[Line]) -> Restock:
    # Locking the order's reservations serialises its returns: each one sees what the
    # others put back. `reserved` rows count too: goods came back, so they left, even if
    # their ShipmentDispatched is still queued here (it then takes them off on_hand as usual).
    reservations = list(
        uow.session.scalars(
            select(Reservation)
            .where(
                Reservation.order_id == order_id,
                Reservation.sku.in_(sorted({line.sku for line in lines})),
                Reservation.status.in_(("shipped", "reserved")),
            )
            .order_by(Reservation.sku, Reservation.warehouse)
            .with_for_update()
        )
    )
    allocations, excess = plan_restock(
        lines, [Shipped(r.sku, r.warehouse, r.quantity, r.restocked) for r in reservations]
    )
    for over in excess:
        log.warning(
            "return %s of order %s: %d of %s came back, more than left for the order and had"
            " not come back before; restocking only %d",
            return_id,
            order_id,
            over.returned,
            over.sku,
            over.restocked,
        )
    shipped_from = {(r.sku, r.warehouse): r for r in reservations}
    if allocations:
        levels = {
            (level.sku, level.warehouse): level
            for level in lock_stock(uow, (a.sku for a in allocations))
        }
        for allocation in allocations:
            key = (allocation.sku, allocation.warehouse)
            levels[key].on_hand += allocation.quantity
            shipped_from[key].restocked += allocation.quantity
    restock = Restock(
        return_id=return_id,
        order_id=order_id,
        lines=_per_sku(allocations),
        restocked_at=datetime.now(UTC),
    )
    uow.session.add(restock)
    return restock


def _per_sku(allocations: Sequence[Allocation]) -> list[dict[str, Any]]:
    """What the answer reports: units per SKU, whichever warehouses they went to."""
    totals: dict[str, int] = {}
    for allocation in allocations:
        totals[allocation.sku] = totals.get(allocation.sku, 0) + allocation.quantity
    return [{"sku": sku, "quantity": quantity} for sku, quantity in totals.items()]
