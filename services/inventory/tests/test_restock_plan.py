from __future__ import annotations

from inventory.domain.allocation import Allocation, Line
from inventory.domain.restock import Excess, Shipped, plan_restock


def test_returned_units_fill_the_warehouses_they_left_from_in_name_order() -> None:
    shipped = [Shipped("A", "WH-2", 3, 0), Shipped("A", "WH-1", 2, 0)]
    allocations, excess = plan_restock([Line("A", 4)], shipped)
    assert allocations == [Allocation("A", "WH-1", 2), Allocation("A", "WH-2", 2)]
    assert excess == []


def test_a_warehouse_takes_back_only_what_earlier_returns_did_not() -> None:
    shipped = [Shipped("A", "WH-1", 2, 2), Shipped("A", "WH-2", 3, 1)]
    allocations, excess = plan_restock([Line("A", 2)], shipped)
    assert allocations == [Allocation("A", "WH-2", 2)]
    assert excess == []


def test_more_than_left_is_reported_and_not_restocked() -> None:
    allocations, excess = plan_restock(
        [Line("A", 1), Line("A", 4), Line("B", 1)], [Shipped("A", "WH-1", 3, 0)]
    )
    assert allocations == [Allocation("A", "WH-1", 3)]
    assert excess == [Excess("A", 5, 3), Excess("B", 1, 0)]
