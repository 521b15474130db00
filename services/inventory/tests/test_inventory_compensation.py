"""ReleaseStock and RestockItems through inventory's own consumer wiring, on every database.

The saga re-sends each command (under a new event id) until it sees the answer, and a
command may overtake the events it compensates: each test feeds such sequences to the real
subscription and checks stock, answers and the door each command closes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inventory import contracts
from inventory.adapters.tables import (
    InventoryBase,
    ReservationRequest,
    StockLevel,
    inbox,
    outbox,
)
from inventory.bootstrap import definition
from inventory.settings import InventorySettings
from kit.avro_codec import SchemaStore
from kit.consumer import BatchProcessor
from kit.database import create_database_engine
from kit.envelope import Envelope
from kit.settings import REPO_ROOT
from kit.unit_of_work import UnitOfWork

SCHEMAS = SchemaStore.load(REPO_ROOT / "schemas")
ORDER = "order-1"


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Inventory:
    """The inventory service's database and consumer, fed batches by hand instead of Kafka."""

    def __init__(self, url: str) -> None:
        self.engine = create_database_engine(url)
        InventoryBase.metadata.create_all(self.engine)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        subscription = definition(InventorySettings()).subscription
        assert subscription is not None
        self.processor = BatchProcessor(
            subscription, SCHEMAS, self.unit_of_work, group_id="inventory"
        )
        self._offset = 0

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, SCHEMAS, contracts.PUBLISHES, outbox, inbox, "inventory")

    def stock_up(self, sku: str, on_hand: Mapping[str, int]) -> None:
        with self.sessions.begin() as session:
            for warehouse, units in on_hand.items():
                session.add(StockLevel(sku=sku, warehouse=warehouse, on_hand=units, reserved=0))

    def receive(self, *messages: tuple[str, Mapping[str, Any]]) -> None:
        """One consumed batch; every message, a repeat included, carries a new event id."""
        records = []
        for event_type, payload in messages:
            envelope = Envelope(
                event_type=event_type,
                key=payload["order_id"],
                payload=payload,
                correlation_id=payload["order_id"],
                producer="orders",
            )
            self._offset += 1
            records.append(
                Record(
                    "orders.commands",
                    0,
                    self._offset,
                    envelope.key.encode(),
                    SCHEMAS.encode(event_type, payload),
                    envelope.headers(),
                )
            )
        outcome = self.processor.process(records)
        assert outcome.dead_lettered == 0, "a handler failed"

    def emitted(self, event_type: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            values = connection.execute(
                select(outbox.c.value)
                .where(outbox.c.event_type == event_type)
                .order_by(outbox.c.id)
            ).scalars()
            return [SCHEMAS.decode(value)[1] for value in values]

    def stock(self, sku: str, warehouse: str) -> tuple[int, int]:
        """(on hand, reserved)."""
        with self.sessions() as session:
            level = session.get(StockLevel, (sku, warehouse))
            assert level is not None
            return level.on_hand, level.reserved


@pytest.fixture
def inventory(database_url: str) -> Iterator[Inventory]:
    service = Inventory(database_url)
    service.stock_up("A", {"WH-1": 10})
    yield service
    service.engine.dispose()


def order_placed(*lines: tuple[str, int]) -> tuple[str, dict[str, Any]]:
    return "OrderPlaced", {
        "order_id": ORDER,
        "customer_id": "c-1",
        "customer_email": "c-1@example.com",
        "customer_name": "Test Customer",
        "lines": [
            {"sku": sku, "name": sku, "quantity": quantity, "unit_price": 100}
            for sku, quantity in lines
        ],
        "currency": "EUR",
        "subtotal": 100 * sum(quantity for _, quantity in lines),
        "shipping": 0,
        "total": 100 * sum(quantity for _, quantity in lines),
        "shipping_address": {
            "name": "Test Customer",
            "line1": "1 Test Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "payment_token": "tok_visa",
        "placed_at": datetime.now(UTC),
    }


def release_stock() -> tuple[str, dict[str, Any]]:
    return "ReleaseStock", {"order_id": ORDER, "reason": "customer_cancelled"}


def shipment_dispatched() -> tuple[str, dict[str, Any]]:
    return "ShipmentDispatched", {
        "order_id": ORDER,
        "shipment_id": "s-1",
        "carrier": "sim",
        "tracking_number": "T-1",
        "dispatched_at": datetime.now(UTC),
    }


def restock_items(return_id: str, *lines: tuple[str, int]) -> tuple[str, dict[str, Any]]:
    return "RestockItems", {
        "order_id": ORDER,
        "return_id": return_id,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


# -- ReleaseStock ---------------------------------------------------------------------------


def test_a_release_before_the_order_was_placed_makes_the_late_order_reserve_nothing(
    inventory: Inventory,
) -> None:
    inventory.receive(release_stock())
    inventory.receive(order_placed(("A", 3)))
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.emitted("StockReleased") == [{"order_id": ORDER, "lines": []}]
    assert inventory.emitted("StockReserved") == []
    assert inventory.emitted("StockReservationFailed") == []
    with inventory.sessions() as session:
        request = session.get(ReservationRequest, ORDER)
        assert request is not None
        assert request.outcome == "cancelled"


def test_a_release_and_the_late_order_in_one_batch_reserve_nothing(inventory: Inventory) -> None:
    inventory.receive(release_stock(), order_placed(("A", 3)))
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.emitted("StockReserved") == []


def test_a_repeated_release_releases_the_stock_once_and_answers_each_time(
    inventory: Inventory,
) -> None:
    inventory.receive(order_placed(("A", 3)))
    assert inventory.stock("A", "WH-1") == (10, 3)
    inventory.receive(release_stock())
    inventory.receive(release_stock())
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.emitted("StockReleased") == [
        {"order_id": ORDER, "lines": [{"sku": "A", "quantity": 3, "warehouse": "WH-1"}]},
        {"order_id": ORDER, "lines": []},
    ]


def test_a_release_after_the_goods_shipped_releases_nothing(inventory: Inventory) -> None:
    inventory.receive(order_placed(("A", 3)))
    inventory.receive(shipment_dispatched())
    inventory.receive(release_stock())
    assert inventory.stock("A", "WH-1") == (7, 0)
    assert inventory.emitted("StockReleased") == [{"order_id": ORDER, "lines": []}]


# -- RestockItems ---------------------------------------------------------------------------


def shipped(inventory: Inventory, *lines: tuple[str, int]) -> None:
    inventory.receive(order_placed(*lines))
    inventory.receive(shipment_dispatched())


def test_a_repeated_restock_puts_the_goods_back_once_and_answers_alike(
    inventory: Inventory,
) -> None:
    shipped(inventory, ("A", 3))
    inventory.receive(restock_items("r-1", ("A", 2)))
    inventory.receive(restock_items("r-1", ("A", 2)))
    assert inventory.stock("A", "WH-1") == (9, 0)
    answer = {"order_id": ORDER, "return_id": "r-1", "lines": [{"sku": "A", "quantity": 2}]}
    assert inventory.emitted("StockRestocked") == [answer, answer]


def test_restocking_more_than_shipped_restocks_only_what_shipped(inventory: Inventory) -> None:
    shipped(inventory, ("A", 3))
    inventory.receive(restock_items("r-1", ("A", 5)))
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.emitted("StockRestocked")[0]["lines"] == [{"sku": "A", "quantity": 3}]


def test_a_sku_the_order_never_shipped_is_not_restocked(inventory: Inventory) -> None:
    inventory.stock_up("B", {"WH-1": 5})
    shipped(inventory, ("A", 3))
    inventory.receive(restock_items("r-1", ("B", 1), ("A", 1)))
    assert inventory.stock("B", "WH-1") == (5, 0)
    assert inventory.stock("A", "WH-1") == (8, 0)
    assert inventory.emitted("StockRestocked")[0]["lines"] == [{"sku": "A", "quantity": 1}]


def test_two_returns_restock_into_the_warehouses_the_goods_left_from(
    inventory: Inventory,
) -> None:
    inventory.stock_up("C", {"WH-1": 2, "WH-2": 10})
    shipped(inventory, ("C", 3))  # two from WH-1, one from WH-2
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((0, 0), (9, 0))
    inventory.receive(restock_items("r-1", ("C", 1)))
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((1, 0), (9, 0))
    inventory.receive(restock_items("r-2", ("C", 2)))
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((2, 0), (10, 0))
    inventory.receive(restock_items("r-3", ("C", 1)))  # everything came back already
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((2, 0), (10, 0))
    assert [event["lines"] for event in inventory.emitted("StockRestocked")] == [
        [{"sku": "C", "quantity": 1}],
        [{"sku": "C", "quantity": 2}],
        [],
    ]


def test_a_return_read_before_its_dispatch_nets_out_once_the_dispatch_is_read(
    inventory: Inventory,
) -> None:
    inventory.receive(order_placed(("A", 3)))
    inventory.receive(restock_items("r-1", ("A", 3)))
    assert inventory.stock("A", "WH-1") == (13, 3)
    inventory.receive(shipment_dispatched())
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.emitted("StockRestocked")[0]["lines"] == [{"sku": "A", "quantity": 3}]
