"""A storefront lists its orders with filters and cursor pages, and waits for an order to
change with a long-poll instead of polling hard."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, ServiceControl, problem_type


def list_all(client: PipelineClient, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page_params = params | ({"cursor": cursor} if cursor else {})
        response = client.http.get("/v1/orders", params=page_params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_orders_are_listed_newest_first_by_status_customer_and_date(
    client: PipelineClient,
) -> None:
    customer = f"lister-{uuid.uuid4().hex[:8]}"
    placed = [client.place(order_body([("T-TEE", 1)], customer=customer)) for _ in range(4)]
    declined = client.place(
        order_body([("T-TEE", 1)], customer=customer, token="tok_chargeDeclined")
    )
    placed.append(declined)
    settled = client.wait_settled([o["order_id"] for o in placed])
    newest_first = [o["order_id"] for o in reversed(placed)]

    mine = list_all(client, customer_id=customer)
    assert [item["order_id"] for item in mine] == newest_first
    assert {item["order_id"]: item["status"] for item in mine} == {
        order_id: order["status"] for order_id, order in settled.items()
    }
    assert all(item["customer_id"] == customer for item in mine)

    cancelled = list_all(client, customer_id=customer, status="CANCELLED")
    assert [item["order_id"] for item in cancelled] == [declined["order_id"]]
    either = list_all(client, customer_id=customer, status="CANCELLED,COMPLETED")
    assert [item["order_id"] for item in either] == newest_first
    repeated = list_all(client, customer_id=customer, status=["PENDING", "CANCELLED"])
    assert [item["order_id"] for item in repeated] == [declined["order_id"]]

    # placed_from is inclusive, placed_to exclusive
    second, fourth = placed[1]["placed_at"], placed[3]["placed_at"]
    between = list_all(client, customer_id=customer, placed_from=second, placed_to=fourth)
    assert [item["order_id"] for item in between] == [placed[2]["order_id"], placed[1]["order_id"]]
    assert list_all(client, customer_id=customer, placed_from=placed[4]["placed_at"]) == mine[:1]

    unknown = client.http.get("/v1/orders", params={"status": "LOST"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "query.status"


def test_cursor_pages_have_no_repeats_and_no_gaps(client: PipelineClient) -> None:
    customer = f"pager-{uuid.uuid4().hex[:8]}"
    order_ids = [
        client.place(order_body([("T-MUG", 1)], customer=customer))["order_id"] for _ in range(7)
    ]
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"customer_id": customer, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.http.get("/v1/orders", params=params).json()
        pages.append([item["order_id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # an order placed meanwhile appears on the first page, never shifts these ones
        client.place(order_body([("T-MUG", 1)], customer=f"{customer}-other"))
    assert [len(page) for page in pages] == [3, 3, 1]
    flat = [order_id for page in pages for order_id in page]
    assert flat == list(reversed(order_ids))


def test_a_cursor_not_issued_by_the_api_is_a_400(client: PipelineClient) -> None:
    first = client.http.get("/v1/orders", params={"limit": 1}).json()
    cursor = first["next_cursor"] or "c1"
    for bad in ("garbage!", cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"), "x" * 300):
        response = client.http.get("/v1/orders", params={"cursor": bad})
        assert response.status_code == 400, (bad, response.text)
        assert problem_type(response) == "invalid-cursor"


def test_a_long_poll_answers_as_soon_as_the_status_moves(
    client: PipelineClient, services: ServiceControl
) -> None:
    client.place(order_body([("T-TEE", 1)], customer="catalog-ready"))
    services.stop("inventory")  # nobody reserves stock: the order waits in PENDING
    order = client.place(order_body([("T-TEE", 1)], customer="long-poller"))
    assert order["status"] == "PENDING"
    order_id = order["order_id"]

    def long_poll() -> tuple[httpx.Response, float]:
        with client.pipeline.gateway(timeout=90) as http:
            response = http.get(f"/v1/orders/{order_id}", params={"wait": 55, "status": "PENDING"})
        return response, time.monotonic()

    with ThreadPoolExecutor(1) as pool:
        polled_at = time.monotonic()
        waiting = pool.submit(long_poll)
        services.start("inventory")  # returns once it is healthy: it reserves moments later
        started_at = time.monotonic()
        response, answered_at = waiting.result(timeout=90)
    assert response.status_code == 200, response.text
    assert response.json()["status"] != "PENDING"
    assert response.json()["order_id"] == order_id
    # The change ended the wait, soon after inventory was back, before `wait` (55 s) ran out.
    assert answered_at - started_at < 30
    assert answered_at - polled_at < 50


def test_a_long_poll_on_an_unchanged_order_ends_at_the_servers_maximum(
    client: PipelineClient, services: ServiceControl
) -> None:
    completed = client.place(order_body([("T-TEE", 1)], customer="long-poll-idle"))["order_id"]
    declined = client.place(
        order_body([("T-TEE", 1)], customer="long-poll-idle", token="tok_chargeDeclined")
    )["order_id"]
    settled = client.wait_settled([completed, declined])
    assert settled[completed]["status"] == "COMPLETED"

    # CANCELLED can never change: answered at once, not after `wait` (busy machine allowed)
    started = time.monotonic()
    response = client.http.get(f"/v1/orders/{declined}", params={"wait": 30, "status": "CANCELLED"})
    assert response.json()["status"] == "CANCELLED"
    assert time.monotonic() - started < 10

    services.restart("orders", {"LONG_POLL_MAX_WAIT": "PT1S"})

    started = time.monotonic()
    response = client.http.get(
        f"/v1/orders/{completed}", params={"wait": 30, "status": "COMPLETED"}
    )
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "COMPLETED"
    assert 1 <= took < 10
