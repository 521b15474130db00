"""`GET /v1/orders` over HTTP: query parameters, problem documents, following next_cursor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Header
from fastapi.testclient import TestClient

from kit.api import RuntimeDep
from orders.domain.saga import OrderStatus
from orders.entrypoints.listing import (
    LIST_ORDERS_RESPONSES,
    OrderListQueryDep,
    OrderPage,
    list_orders,
)
from orders.testing import OTHER_SHOP, SHOP, GatewayHarness, assert_problem, new_order

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# The route as the lead mounts it, with the caller named by a header instead of a key.
gateway = APIRouter()


@gateway.get("/v1/orders", response_model=OrderPage, responses=LIST_ORDERS_RESPONSES)
def list_my_orders(
    query: OrderListQueryDep, runtime: RuntimeDep, x_client: Annotated[str, Header()]
) -> OrderPage:
    with runtime.read_session_factory() as session:
        return list_orders(session, x_client, query.filters, query.limit, query.cursor)


@pytest.fixture
def client(orders_db: GatewayHarness) -> Iterator[TestClient]:
    statuses = [OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.CANCELLED]
    orders_db.add(
        *(
            new_order(
                f"order-{n:02d}",
                T0 + timedelta(minutes=n // 2),
                status=statuses[n % 3],
                customer_id="c-2" if n == 7 else "c-1",
            )
            for n in range(10)
        ),
        new_order("theirs", T0, status=OrderStatus.PAID, client_id=OTHER_SHOP),
    )
    with TestClient(orders_db.app(gateway), headers={"X-Client": SHOP}) as client:
        yield client


def listed(client: TestClient, **params: Any) -> list[str]:
    """Every order id over all pages, following next_cursor."""
    order_ids: list[str] = []
    cursor: str | None = None
    while True:
        response = client.get("/v1/orders", params={**params, "cursor": cursor or ""})
        assert response.status_code == 200, response.text
        page = response.json()
        order_ids += [item["order_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return order_ids


def test_following_next_cursor_lists_the_callers_orders_newest_first(
    client: TestClient,
) -> None:
    assert listed(client, limit=3) == [f"order-{n:02d}" for n in reversed(range(10))]


def test_a_page_has_items_and_next_cursor(client: TestClient) -> None:
    response = client.get("/v1/orders", params={"limit": 1})

    assert response.status_code == 200
    body = response.json()
    assert body["items"] == [
        {
            "order_id": "order-09",
            "status": "PENDING",
            "cancel_reason": None,
            "customer_id": "c-1",
            "currency": "EUR",
            "total": 1000,
            "placed_at": "2025-03-01T12:04:00Z",
            "completed_at": None,
        }
    ]
    assert isinstance(body["next_cursor"], str)


def test_the_default_page_holds_twenty(client: TestClient) -> None:
    body = client.get("/v1/orders").json()

    assert len(body["items"]) == 10
    assert body["next_cursor"] is None


def test_status_may_be_repeated_or_comma_separated(client: TestClient) -> None:
    repeated = listed(client, status=["PAID", "CANCELLED"], limit=2)
    commas = listed(client, status="PAID,CANCELLED", limit=2)

    assert repeated == commas == [f"order-{n:02d}" for n in reversed(range(10)) if n % 3 != 0]


def test_customer_and_dates_filter(client: TestClient) -> None:
    assert listed(client, customer_id="c-2") == ["order-07"]
    assert listed(
        client, placed_from="2025-03-01T12:01:00Z", placed_to="2025-03-01T13:02:00+01:00"
    ) == ["order-03", "order-02"]


def test_another_clients_orders_are_not_listed(client: TestClient) -> None:
    # "theirs" is a PAID order of customer c-1 too, placed at the same time as order-00.
    assert "theirs" not in listed(client)
    assert listed(client, status="PAID", customer_id="c-1") == ["order-04", "order-01"]


def test_an_empty_cursor_means_the_first_page(client: TestClient) -> None:
    first = client.get("/v1/orders", params={"limit": 2}).json()

    assert client.get("/v1/orders", params={"limit": 2, "cursor": ""}).json() == first


@pytest.mark.parametrize("cursor", ["garbage", "=", "YzE" * 10])
def test_a_garbled_cursor_is_a_400_problem(client: TestClient, cursor: str) -> None:
    response = client.get("/v1/orders", params={"cursor": cursor})

    body = assert_problem(response, 400, "invalid-cursor")
    assert "cursor" in body["detail"]


def test_an_altered_cursor_is_a_400_problem(client: TestClient) -> None:
    cursor = client.get("/v1/orders", params={"limit": 2}).json()["next_cursor"]
    altered = cursor[:30] + ("x" if cursor[30] != "x" else "y") + cursor[31:]

    assert_problem(client.get("/v1/orders", params={"cursor": altered}), 400, "invalid-cursor")


def test_an_unknown_status_is_a_422_problem_naming_the_field(client: TestClient) -> None:
    response = client.get("/v1/orders", params={"status": "PAID,SHIPPED"})

    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [
        {"field": "query.status", "message": body["errors"][0]["message"]},
    ]
    assert "SHIPPED" in body["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"placed_from": "yesterday"}, "query.placed_from"),
        ({"placed_from": "2025-03-01T12:00:00"}, "query.placed_from"),  # no offset
        ({"placed_to": "2025-03-01T12:00:00"}, "query.placed_to"),
        ({"customer_id": ""}, "query.customer_id"),
        (
            {"placed_from": "2025-03-02T00:00Z", "placed_to": "2025-03-01T00:00Z"},
            "query.placed_from",
        ),
    ],
)
def test_invalid_parameters_are_422_problems_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(client.get("/v1/orders", params=params), 422, "validation-error")

    assert [error["field"] for error in body["errors"]] == [field]


def test_the_openapi_document_describes_the_parameters_and_the_400(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/orders"]["get"]

    parameters = {p["name"] for p in operation["parameters"]}
    assert {"status", "customer_id", "placed_from", "placed_to", "limit", "cursor"} <= parameters
    assert {"200", "400", "422"} <= set(operation["responses"])
