"""ReleaseStock and RestockItems through inventory's own consumer wiring, on every database.

The saga re-sends each command (under a new event id) until it sees the answer, and a
command may overtake the events it compensates: each test feeds such sequences to the real
subscription and checks stock, answers and the door each command closes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import pytest

from inventory.adapters.tables import ReservationRequest, StockLevel
from inventory.bootstrap import definition
from inventory.settings import InventorySettings
from kit.envelope import Envelope
from kit.testing.service_harness import (
    ServiceHarness,
    command,
    event,
    order_placed,
    sku_lines,
)

ORDER = "order-1"


class Inventory(ServiceHarness):
    def __init__(self, database_url: str) -> None:
        settings = InventorySettings(database_url=database_url)
        super().__init__(settings, definition(settings), commands=("ReleaseStock", "RestockItems"))

    def stock_up(self, sku: str, on_hand: Mapping[str, int]) -> None:
        with self.session() as session, session.begin():
            for warehouse, units in on_hand.items():
                session.add(StockLevel(sku=sku, warehouse=warehouse, on_hand=units, reserved=0))

    def stock(self, sku: str, warehouse: str) -> tuple[int, int]:
        """(on hand, reserved)."""
        with self.session() as session:
            level = session.get(StockLevel, (sku, warehouse))
            assert level is not None
            return level.on_hand, level.reserved


@pytest.fixture
def inventory(database_url: str) -> Iterator[Inventory]:
    service = Inventory(database_url)
    service.stock_up("A", {"WH-1": 10})
    yield service
    service.close()


def placed(*lines: tuple[str, int]) -> Envelope:
    return order_placed(ORDER, lines)


def release_stock() -> Envelope:
    return command("ReleaseStock", ORDER, reason="customer_cancelled")


def shipment_dispatched() -> Envelope:
    return event(
        "ShipmentDispatched",
        ORDER,
        "fulfillment",
        shipment_id="s-1",
        carrier="sim",
        tracking_number="T-1",
        dispatched_at=datetime.now(UTC),
    )


def restock_items(return_id: str, *lines: tuple[str, int]) -> Envelope:
    return command("RestockItems", ORDER, return_id=return_id, lines=sku_lines(lines))


# -- ReleaseStock ---------------------------------------------------------------------------


def test_a_release_before_the_order_was_placed_makes_the_late_order_reserve_nothing(
    inventory: Inventory,
) -> None:
    inventory.deliver(release_stock())
    inventory.deliver(placed(("A", 3)))
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.payloads("StockReleased") == [{"order_id": ORDER, "lines": []}]
    assert inventory.payloads("StockReserved") == []
    assert inventory.payloads("StockReservationFailed") == []
    with inventory.session() as session:
        request = session.get(ReservationRequest, ORDER)
        assert request is not None
        assert request.outcome == "cancelled"


def test_a_release_and_the_late_order_in_one_batch_reserve_nothing(inventory: Inventory) -> None:
    inventory.deliver(release_stock(), placed(("A", 3)))
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.payloads("StockReserved") == []


def test_a_repeated_release_releases_the_stock_once_and_answers_each_time(
    inventory: Inventory,
) -> None:
    inventory.deliver(placed(("A", 3)))
    assert inventory.stock("A", "WH-1") == (10, 3)
    inventory.deliver(release_stock())
    inventory.deliver(release_stock())
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.payloads("StockReleased") == [
        {"order_id": ORDER, "lines": [{"sku": "A", "quantity": 3, "warehouse": "WH-1"}]},
        {"order_id": ORDER, "lines": []},
    ]


def test_a_release_after_the_goods_shipped_releases_nothing(inventory: Inventory) -> None:
    inventory.deliver(placed(("A", 3)))
    inventory.deliver(shipment_dispatched())
    inventory.deliver(release_stock())
    assert inventory.stock("A", "WH-1") == (7, 0)
    assert inventory.payloads("StockReleased") == [{"order_id": ORDER, "lines": []}]


# -- RestockItems ---------------------------------------------------------------------------


def shipped(inventory: Inventory, *lines: tuple[str, int]) -> None:
    inventory.deliver(placed(*lines))
    inventory.deliver(shipment_dispatched())


def test_a_repeated_restock_puts_the_goods_back_once_and_answers_alike(
    inventory: Inventory,
) -> None:
    shipped(inventory, ("A", 3))
    inventory.deliver(restock_items("r-1", ("A", 2)))
    inventory.deliver(restock_items("r-1", ("A", 2)))
    assert inventory.stock("A", "WH-1") == (9, 0)
    answer = {"order_id": ORDER, "return_id": "r-1", "lines": [{"sku": "A", "quantity": 2}]}
    assert inventory.payloads("StockRestocked") == [answer, answer]


def test_restocking_more_than_shipped_restocks_only_what_shipped(inventory: Inventory) -> None:
    shipped(inventory, ("A", 3))
    inventory.deliver(restock_items("r-1", ("A", 5)))
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.payloads("StockRestocked")[0]["lines"] == [{"sku": "A", "quantity": 3}]


def test_a_sku_the_order_never_shipped_is_not_restocked(inventory: Inventory) -> None:
    inventory.stock_up("B", {"WH-1": 5})
    shipped(inventory, ("A", 3))
    inventory.deliver(restock_items("r-1", ("B", 1), ("A", 1)))
    assert inventory.stock("B", "WH-1") == (5, 0)
    assert inventory.stock("A", "WH-1") == (8, 0)
    assert inventory.payloads("StockRestocked")[0]["lines"] == [{"sku": "A", "quantity": 1}]


def test_two_returns_restock_into_the_warehouses_the_goods_left_from(
    inventory: Inventory,
) -> None:
    inventory.stock_up("C", {"WH-1": 2, "WH-2": 10})
    shipped(inventory, ("C", 3))  # two from WH-1, one from WH-2
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((0, 0), (9, 0))
    inventory.deliver(restock_items("r-1", ("C", 1)))
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((1, 0), (9, 0))
    inventory.deliver(restock_items("r-2", ("C", 2)))
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((2, 0), (10, 0))
    inventory.deliver(restock_items("r-3", ("C", 1)))  # everything came back already
    assert (inventory.stock("C", "WH-1"), inventory.stock("C", "WH-2")) == ((2, 0), (10, 0))
    assert [answer["lines"] for answer in inventory.payloads("StockRestocked")] == [
        [{"sku": "C", "quantity": 1}],
        [{"sku": "C", "quantity": 2}],
        [],
    ]


def test_a_return_read_before_its_dispatch_nets_out_once_the_dispatch_is_read(
    inventory: Inventory,
) -> None:
    inventory.deliver(placed(("A", 3)))
    inventory.deliver(restock_items("r-1", ("A", 3)))
    assert inventory.stock("A", "WH-1") == (13, 3)
    inventory.deliver(shipment_dispatched())
    assert inventory.stock("A", "WH-1") == (10, 0)
    assert inventory.payloads("StockRestocked")[0]["lines"] == [{"sku": "A", "quantity": 3}]
