from __future__ import annotations

from inventory.domain.allocation import Allocation, Line, Shortage, allocate


def test_a_line_is_split_over_warehouses_in_name_order() -> None:
    allocations, shortages = allocate([Line("A", 5)], {"A": {"WH-2": 10, "WH-1": 3}})
    assert shortages == []
    assert allocations == [Allocation("A", "WH-1", 3), Allocation("A", "WH-2", 2)]


def test_any_short_line_fails_the_whole_order_and_reports_every_shortage() -> None:
    allocations, shortages = allocate(
        [Line("A", 1), Line("B", 5), Line("C", 1)], {"A": {"W": 9}, "B": {"W": 4}}
    )
    assert allocations == []
    assert shortages == [Shortage("B", 5, 4), Shortage("C", 1, 0)]


def test_repeated_skus_cannot_both_claim_the_last_unit() -> None:
    allocations, shortages = allocate([Line("A", 1), Line("A", 1)], {"A": {"W": 1}})
    assert allocations == []
    assert shortages == [Shortage("A", 2, 1)]
