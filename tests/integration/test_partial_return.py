"""Returns of part of an order refund exactly the returned lines; the shipping fee is
refunded only by the return that brings the last unit back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, problem_type
from tests.integration.ledger import assert_ledger


def return_and_receive(
    client: PipelineClient, order_id: str, lines: list[tuple[str, int]]
) -> dict[str, Any]:
    """Requests a return, lets the warehouse receive the parcel; the order once settled."""
    response = client.request_return(order_id, lines, "not as pictured")
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]

    def labelled(order: dict[str, Any]) -> bool:
        return any(
            r["return_id"] == return_id and r["status"] == "label_issued" for r in order["returns"]
        )

    client.wait_order(order_id, labelled, f"given a label for {return_id}")
    assert client.receive_return(return_id).status_code == 202
    return client.wait_settled([order_id])[order_id]


async def test_partial_returns_refund_their_lines_and_the_last_one_refunds_shipping(
    client: PipelineClient, initial_stock: Counter[str]
) -> None:
    # 3 x 1000 + 2 x 2500 = 8000, below free shipping: the order pays a shipping fee.
    order_id = client.place(order_body([("T-MUG", 3), ("T-TEE", 2)], customer="partial"))[
        "order_id"
    ]
    delivered = client.wait_settled([order_id])[order_id]
    assert (delivered["status"], delivered["subtotal"]) == ("COMPLETED", 8000)
    shipping = delivered["shipping"]
    assert shipping > 0

    response = client.request_return(order_id, [("T-MUG", 1)], "chipped")
    assert response.status_code == 202, response.text
    first_id = response.json()["return_id"]
    busy = client.request_return(order_id, [("T-TEE", 1)])
    assert busy.status_code == 409, busy.text
    assert problem_type(busy) == "return-in-progress"
    client.wait_order(
        order_id, lambda o: o["returns"][0]["status"] == "label_issued", "given a label"
    )
    assert client.receive_return(first_id).status_code == 202
    after_first = client.wait_settled([order_id])[order_id]
    assert after_first["status"] == "RETURNED"
    assert after_first["refunded"] == 1000  # one mug, no shipping

    for too_much in ([("T-MUG", 3)], [("T-RARE", 1)], [("T-TEE", 3)]):
        refused = client.request_return(order_id, too_much)
        assert refused.status_code == 422, (too_much, refused.text)
        assert problem_type(refused) == "invalid-return-lines"

    final = return_and_receive(client, order_id, [("T-MUG", 2), ("T-TEE", 2)])
    assert final["status"] == "RETURNED"
    refunds = {r["return_id"]: r["refund_amount"] for r in final["returns"]}
    assert refunds.pop(first_id) == 1000
    assert list(refunds.values()) == [2 * 1000 + 2 * 2500 + shipping]
    assert final["refunded"] == delivered["total"]
    await assert_ledger(client, initial_stock)
