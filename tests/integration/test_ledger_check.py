"""The ledger check itself: its refund rule, and that it notices damaged books and names
the SKU or order at fault (a check that cannot fail proves nothing)."""

from __future__ import annotations

from collections import Counter

import pytest

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient
from tests.integration.ledger import Order, Return, assert_ledger


def delivered_order(*returns: Return) -> Order:
    # 2 x 1000 + 1 x 2500, shipping 499
    return Order(
        "o-1",
        "RETURNED" if returns else "COMPLETED",
        None,
        [],
        shipping=499,
        total=4999,
        refunded=0,
        quantities=Counter({"MUG": 2, "TEE": 1}),
        unit_prices={"MUG": 1000, "TEE": 2500},
        returns=list(returns),
    )


def refunded_return(return_id: str, requested_at: int, **received: int) -> Return:
    return Return(return_id, "refunded", Counter(received), None, requested_at)


def test_a_partial_return_refunds_its_lines_and_the_one_completing_the_order_adds_shipping() -> (
    None
):
    order = delivered_order(
        refunded_return("r-2", 2, MUG=1, TEE=1), refunded_return("r-1", 1, MUG=1)
    )
    assert [(r.return_id, amount) for r, amount in order.expected_refunds()] == [
        ("r-1", 1000),
        ("r-2", 1000 + 2500 + 499),
    ]
    assert order.expected_net() == 0


def test_a_parcel_short_of_units_refunds_only_what_arrived_and_no_shipping() -> None:
    order = delivered_order(refunded_return("r-1", 1, MUG=1, TEE=1))
    assert [amount for _, amount in order.expected_refunds()] == [3500]
    assert order.expected_net() == 4999 - 3500
    assert order.restocked() == Counter({"MUG": 1, "TEE": 1})


def test_returns_not_yet_refunded_count_for_nothing() -> None:
    pending = Return("r-1", "received", Counter({"MUG": 2}), None, 1)
    assert delivered_order(pending).expected_refunds() == []


async def test_the_ledger_names_the_sku_and_the_order_whose_books_are_damaged(
    client: PipelineClient, initial_stock: Counter[str]
) -> None:
    order_id = client.place(order_body([("T-TEE", 1)], customer="ledger-victim"))["order_id"]
    client.wait_settled([order_id])
    await assert_ledger(client, initial_stock)

    client.execute(
        "inventory",
        "UPDATE stock_levels SET on_hand = on_hand + 1 WHERE sku = 'T-TEE' AND warehouse = 'WH-A'",
    )
    try:
        with pytest.raises(AssertionError, match=r"SKU T-TEE: \d+ on hand, expected"):
            await assert_ledger(client, initial_stock)
    finally:
        client.execute(
            "inventory",
            "UPDATE stock_levels SET on_hand = on_hand - 1"
            " WHERE sku = 'T-TEE' AND warehouse = 'WH-A'",
        )

    copy_of_one_entry = (
        "INSERT INTO order_timeline"
        " (order_id, event_id, event_type, source, occurred_at, status_after, note)"
        " SELECT order_id, event_id, event_type, source, occurred_at, status_after, note"
        " FROM order_timeline WHERE id = (SELECT MIN(id) FROM order_timeline WHERE order_id = ?)"
    )
    client.execute("orders", copy_of_one_entry, order_id)
    try:
        with pytest.raises(AssertionError, match=f"recorded twice .* order {order_id}"):
            await assert_ledger(client, initial_stock)
    finally:
        client.execute(
            "orders",
            "DELETE FROM order_timeline WHERE id = (SELECT MAX(id) FROM order_timeline"
            " WHERE order_id = ?)",
            order_id,
        )
    await assert_ledger(client, initial_stock)
