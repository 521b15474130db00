"""Inventory's reactions: reserve on OrderPlaced, release on ReleaseStock, ship on dispatch."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select

from inventory.adapters.tables import CatalogItem, Reservation, ReservationRequest, StockLevel
from inventory.domain.allocation import Line, allocate
from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def lock_stock(uow: UnitOfWork, skus: Iterable[str]) -> list[StockLevel]:
    # Locked in SKU order, so two batches touching the same SKUs never deadlock (PostgreSQL).
    query = (
        select(StockLevel)
        .where(StockLevel.sku.in_(sorted(set(skus))))
        .order_by(StockLevel.sku, StockLevel.warehouse)
        .with_for_update()
    )
    return list(uow.session.scalars(query))


def reserve_stock_on_order_placed(envelope: Envelope, uow: UnitOfWork) -> None:
    order_id = envelope.payload["order_id"]
    request = uow.session.get(ReservationRequest, order_id)
    if request is not None:  # answered before, under another event id, or released first
        if request.outcome == "cancelled":
            log.info("order %s was released before it was placed: reserving nothing", order_id)
        return
    lines = [Line(line["sku"], line["quantity"]) for line in envelope.payload["lines"]]
    levels = lock_stock(uow, (line.sku for line in lines))
    available: dict[str, dict[str, int]] = {}
    for level in levels:
        available.setdefault(level.sku, {})[level.warehouse] = level.available
    allocations, shortages = allocate(lines, available)
    now = datetime.now(UTC)
    if shortages:
        uow.session.add(ReservationRequest(order_id=order_id, outcome="failed", decided_at=now))
        uow.emit(
            envelope.caused(
                "StockReservationFailed",
                {
                    "order_id": order_id,
                    "reason": "out_of_stock",
                    "shortages": [
                        {"sku": s.sku, "requested": s.requested, "available": s.available}
                        for s in shortages
                    ],
                },
                producer=uow.service_name,
            )
        )
        log.info("stock reservation failed for order %s: %d SKUs short", order_id, len(shortages))
        return
    by_key = {(level.sku, level.warehouse): level for level in levels}
    for allocation in allocations:
        by_key[(allocation.sku, allocation.warehouse)].reserved += allocation.quantity
        uow.session.add(
            Reservation(
                order_id=order_id,
                sku=allocation.sku,
                warehouse=allocation.warehouse,
                quantity=allocation.quantity,
                status="reserved",
                updated_at=now,
            )
        )
    uow.session.add(ReservationRequest(order_id=order_id, outcome="reserved", decided_at=now))
    uow.emit(
        envelope.caused(
            "StockReserved",
            {
                "order_id": order_id,
                "reservation_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"reservation:{order_id}")),
                "lines": [
                    {"sku": a.sku, "quantity": a.quantity, "warehouse": a.warehouse}
                    for a in allocations
                ],
            },
            producer=uow.service_name,
        )
    )
    log.info("stock reserved for order %s: %d allocations", order_id, len(allocations))
    _detect_low_stock(envelope, uow, levels, {a.sku for a in allocations})


def _detect_low_stock(
    envelope: Envelope, uow: UnitOfWork, levels: list[StockLevel], skus: set[str]
) -> None:
    """Emits LowStockDetected when a reservation takes a SKU's availability under its threshold."""
    for sku in skus:
        item = uow.session.get(CatalogItem, sku)
        sku_levels = [level for level in levels if level.sku == sku]
        available = sum(level.available for level in sku_levels)
        if item is None or available >= item.low_stock_threshold:
            continue
        reserved_now = sum(a["quantity"] for a in envelope.payload["lines"] if a["sku"] == sku)
        if available + reserved_now >= item.low_stock_threshold:  # this order crossed it
            warehouse = min(sku_levels, key=lambda level: level.available).warehouse
            uow.emit(
                envelope.caused(
                    "LowStockDetected",
                    {
                        "sku": sku,
                        "warehouse": warehouse,
                        "available": available,
                        "threshold": item.low_stock_threshold,
                    },
                    key=sku,
                    producer=uow.service_name,
                )
            )


def release_stock(envelope: Envelope, uow: UnitOfWork) -> None:
    order_id = envelope.payload["order_id"]
    if uow.session.get(ReservationRequest, order_id, with_for_update=True) is None:
        # The command overtook OrderPlaced: deciding the order now closes the door, so the
        # late OrderPlaced finds it answered and reserves nothing.
        uow.session.add(
            ReservationRequest(order_id=order_id, outcome="cancelled", decided_at=datetime.now(UTC))
        )
        log.info("order %s released before it was placed: it will reserve nothing", order_id)
    # Acknowledged even when nothing is reserved (released before, shipped, or never
    # reserved): the saga waits for this answer, and an empty release is the truthful one.
    released = _settle(uow, order_id, "released") or []
    uow.emit(
        envelope.caused(
            "StockReleased",
            {"order_id": order_id, "lines": released},
            producer=uow.service_name,
        )
    )
    log.info("stock released for order %s: %d lines", order_id, len(released))


def ship_reserved_stock(envelope: Envelope, uow: UnitOfWork) -> None:
    """The goods left the warehouse: the reservation becomes a decrease of stock on hand."""
    if _settle(uow, envelope.payload["order_id"], "shipped"):
        log.info("reserved stock shipped for order %s", envelope.payload["order_id"])


def _settle(uow: UnitOfWork, order_id: str, outcome: str) -> list[dict[str, object]] | None:
    # Locked: a release and a dispatch of one order racing would otherwise both settle it.
    # Only `reserved` rows are settled, so released or shipped stock is never settled again.
    reservations = list(
        uow.session.scalars(
            select(Reservation)
            .where(Reservation.order_id == order_id, Reservation.status == "reserved")
            .order_by(Reservation.sku, Reservation.warehouse)
            .with_for_update()
        )
    )
    if not reservations:
        return None
    levels = {
        (level.sku, level.warehouse): level
        for level in lock_stock(uow, (r.sku for r in reservations))
    }
    now = datetime.now(UTC)
    for reservation in reservations:
        level = levels[(reservation.sku, reservation.warehouse)]
        level.reserved -= reservation.quantity
        if outcome == "shipped":
            level.on_hand -= reservation.quantity
        reservation.status = outcome
        reservation.updated_at = now
    return [{"sku": r.sku, "quantity": r.quantity, "warehouse": r.warehouse} for r in reservations]
