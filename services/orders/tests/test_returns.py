from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orders.domain.returns import (
    OrderedLine,
    ReturnError,
    ReturnLine,
    refund_for,
    returnable,
    validate_return,
    window_open,
)

ORDERED = [OrderedLine("MUG", 2, 1200), OrderedLine("TEE", 1, 1900)]


def test_what_came_back_is_no_longer_returnable() -> None:
    assert returnable(ORDERED, [ReturnLine("MUG", 1)]) == {"MUG": 1, "TEE": 1}
    assert returnable(ORDERED, [ReturnLine("MUG", 2), ReturnLine("TEE", 1)]) == {}


def test_a_return_merges_lines_of_one_sku() -> None:
    lines = validate_return(ORDERED, [], [ReturnLine("MUG", 1), ReturnLine("MUG", 1)])
    assert lines == (ReturnLine("MUG", 2),)


def test_a_return_names_every_line_it_refuses() -> None:
    with pytest.raises(ReturnError) as refused:
        validate_return(ORDERED, [ReturnLine("MUG", 2)], [ReturnLine("MUG", 1), ReturnLine("X", 1)])
    assert refused.value.problems == (
        "MUG: 1 requested, 0 can still be returned",
        "X: not in this order",
    )


def test_shipping_is_refunded_only_by_the_return_that_brings_back_the_last_unit() -> None:
    assert refund_for(ORDERED, [], [ReturnLine("MUG", 1)], shipping=499) == 1200
    everything = [ReturnLine("MUG", 2), ReturnLine("TEE", 1)]
    assert refund_for(ORDERED, [], everything, shipping=499) == 2400 + 1900 + 499
    rest = [ReturnLine("MUG", 1), ReturnLine("TEE", 1)]
    assert refund_for(ORDERED, [ReturnLine("MUG", 1)], rest, shipping=499) == 1200 + 1900 + 499


def test_the_window_counts_from_delivery() -> None:
    delivered = datetime(2026, 1, 1, tzinfo=UTC)
    window = timedelta(days=30)
    assert window_open(delivered, delivered + timedelta(days=30), window)
    assert not window_open(delivered, delivered + timedelta(days=30, seconds=1), window)
    assert not window_open(None, delivered, window)
