"""The local catalog copy: prices and availability for the gateway, from inventory's events."""

from __future__ import annotations

from kit.envelope import Envelope
from kit.unit_of_work import UnitOfWork
from orders.adapters.tables import CatalogItem


def on_catalog_item_updated(envelope: Envelope, uow: UnitOfWork) -> None:
    payload = envelope.payload
    item = uow.session.get(CatalogItem, payload["sku"])
    if item is None:
        item = CatalogItem(sku=payload["sku"])
        uow.session.add(item)
    elif item.updated_at > payload["updated_at"]:
        return  # an older update replayed after a newer one
    item.name = payload["name"]
    item.unit_price = payload["unit_price"]
    item.currency = payload["currency"]
    item.active = payload["active"]
    item.updated_at = payload["updated_at"]
