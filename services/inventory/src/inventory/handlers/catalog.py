"""Seeding the catalog at start-up; every change is published as CatalogItemUpdated."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inventory.adapters.tables import CatalogItem, StockLevel
from kit.unit_of_work import UnitOfWork


def load_seed(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as seed:
        items: list[dict[str, Any]] = tomllib.load(seed).get("item", [])
    return items


def seed_catalog(uow: UnitOfWork, items: list[dict[str, Any]]) -> int:
    """Adds new SKUs with their stock, updates changed ones; returns how many changed."""
    now = datetime.now(UTC)
    changed = 0
    for spec in items:
        item = uow.session.get(CatalogItem, spec["sku"])
        fields = {
            "name": spec["name"],
            "unit_price": int(spec["unit_price"]),
            "currency": spec.get("currency", "EUR"),
            "active": bool(spec.get("active", True)),
            "low_stock_threshold": int(spec.get("low_stock_threshold", 0)),
        }
        if item is None:
            item = CatalogItem(sku=spec["sku"], updated_at=now, **fields)
            uow.session.add(item)
        elif all(getattr(item, name) == value for name, value in fields.items()):
            continue
        else:
            for name, value in fields.items():
                setattr(item, name, value)
            item.updated_at = now
        for warehouse, units in spec.get("stock", {}).items():
            if uow.session.get(StockLevel, (spec["sku"], warehouse)) is None:
                uow.session.add(
                    StockLevel(sku=spec["sku"], warehouse=warehouse, on_hand=int(units), reserved=0)
                )
        uow.emit(
            uow.new_event(
                "CatalogItemUpdated",
                {
                    "sku": item.sku,
                    "name": item.name,
                    "unit_price": item.unit_price,
                    "currency": item.currency,
                    "active": item.active,
                    "updated_at": now,
                },
                key=item.sku,
                correlation_id=item.sku,
            )
        )
        changed += 1
    return changed
