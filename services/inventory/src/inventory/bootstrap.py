"""The only place the inventory service is assembled."""

from __future__ import annotations

from inventory import contracts
from inventory import metrics as inventory_metrics
from inventory.adapters.tables import InventoryBase
from inventory.handlers.catalog import load_seed, seed_catalog
from inventory.handlers.returns import restock_returned_items
from inventory.handlers.stock import (
    release_stock,
    reserve_stock_on_order_placed,
    ship_reserved_stock,
)
from inventory.settings import InventorySettings
from kit.consumer import Subscription
from kit.service import PeriodicProbe, Runtime, ServiceDefinition


def definition(settings: InventorySettings) -> ServiceDefinition:
    def seed(runtime: Runtime) -> None:
        items = load_seed(settings.catalog_seed_path)
        with runtime.unit_of_work() as uow:
            seed_catalog(uow, items)
            uow.commit()

    inventory_metrics.initialize()
    return ServiceDefinition(
        name="inventory",
        count_emitted=inventory_metrics.count_emitted,
        probes=[PeriodicProbe("stock levels", 5.0, inventory_metrics.probe_stock_levels)],
        title="Order Pipeline — inventory",
        metadata=InventoryBase.metadata,
        routes=contracts.PUBLISHES,
        subscription=Subscription(
            contracts.CONSUMES_TOPICS,
            {
                "OrderPlaced": reserve_stock_on_order_placed,
                "ReleaseStock": release_stock,
                "RestockItems": restock_returned_items,
                "ShipmentDispatched": ship_reserved_stock,
            },
        ),
        on_startup=seed,
    )
