"""The inventory service's business metrics (catalog: docs/METRICS.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inventory.adapters.tables import CatalogItem, StockLevel
from kit.envelope import Envelope

reservations = Counter(
    "inventory_reservations_total", "Orders' stock reservations: reserved or failed", ["outcome"]
)
stock_on_hand = Gauge("inventory_stock_on_hand", "Units on the shelf, all warehouses", ["sku"])
stock_available = Gauge(
    "inventory_stock_available", "Units on hand and not reserved, all warehouses", ["sku"]
)
low_stock_skus = Gauge(
    "inventory_low_stock_skus", "SKUs whose available stock is at or below their threshold"
)

_OUTCOME = {"StockReserved": "reserved", "StockReservationFailed": "failed"}


def count_emitted(envelope: Envelope) -> None:
    outcome = _OUTCOME.get(envelope.event_type)
    if outcome is not None:  # one answer per order: the reservation request is decided once
        reservations.labels(outcome).inc()


def probe_stock_levels(session: Session) -> None:
    """Periodic probe: stock gauges per SKU (the catalog is small, so one series per SKU)."""
    query = (
        select(
            StockLevel.sku,
            func.sum(StockLevel.on_hand),
            func.sum(StockLevel.reserved),
            CatalogItem.low_stock_threshold,
        )
        .join(CatalogItem, CatalogItem.sku == StockLevel.sku)
        .group_by(StockLevel.sku, CatalogItem.low_stock_threshold)
    )
    low = 0
    for sku, on_hand, reserved, threshold in session.execute(query):
        available = int(on_hand) - int(reserved)
        stock_on_hand.labels(sku).set(int(on_hand))
        stock_available.labels(sku).set(available)
        low += available <= threshold
    low_stock_skus.set(low)


def initialize() -> None:
    for outcome in _OUTCOME.values():
        reservations.labels(outcome)
