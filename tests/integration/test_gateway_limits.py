"""What one storefront client may ask: bounded bodies, a request rate, strictly validated
orders, and how much one of its customers may hold in open orders (anti-hoarding)."""

from __future__ import annotations

from typing import Any

import pytest

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, ServiceControl, problem_type


def orders_of(client: PipelineClient, customer: str) -> int:
    rows = client.query("orders", "SELECT COUNT(*) FROM orders WHERE customer_id = ?", customer)
    return int(rows[0][0])


def test_a_body_over_the_size_limit_is_a_413_unread(client: PipelineClient) -> None:
    body = order_body([("T-TEE", 1)], customer="oversized")
    body["notes"] = "x" * (64 * 1024)  # MAX_BODY_BYTES is 64 KiB by default
    response = client.http.post("/v1/orders", json=body)
    assert response.status_code == 413, response.text
    assert problem_type(response) == "payload-too-large"
    assert response.json()["max_bytes"] == 64 * 1024
    assert orders_of(client, "oversized") == 0


def test_over_the_rate_limit_a_client_gets_429_with_retry_after(
    client: PipelineClient, services: ServiceControl
) -> None:
    services.restart("orders", {"RATE_LIMIT": "5/minute"})
    statuses = [client.http.get("/v1/orders").status_code for _ in range(5)]
    assert statuses == [200] * 5
    limited = client.http.get("/v1/orders")
    assert limited.status_code == 429, limited.text
    assert problem_type(limited) == "rate-limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # POSTs count against the same window, and are refused before they do anything
    post = client.http.post("/v1/orders", json=order_body([("T-TEE", 1)], customer="too-fast"))
    assert post.status_code == 429
    assert orders_of(client, "too-fast") == 0


def test_customer_limits_stop_hoarding(client: PipelineClient, services: ServiceControl) -> None:
    # Without payments, orders wait RESERVED: open for the whole test.
    services.stop("payments")
    services.restart("orders", {"MAX_OPEN_ORDERS_PER_CUSTOMER": "2", "MAX_QUANTITY_PER_SKU": "5"})
    for _ in range(2):
        client.place(order_body([("T-MUG", 1)], customer="hoarder"))
    third = client.http.post("/v1/orders", json=order_body([("T-MUG", 1)], customer="hoarder"))
    assert third.status_code == 422, third.text
    assert problem_type(third) == "customer-limit-exceeded"
    assert third.json()["limit"] == "max-open-orders"
    assert third.json()["errors"][0]["field"] == "customer.id"
    assert orders_of(client, "hoarder") == 2

    client.place(order_body([("T-MUG", 4)], customer="sku-hoarder"))
    over = client.http.post(
        "/v1/orders", json=order_body([("T-TEE", 1), ("T-MUG", 2)], customer="sku-hoarder")
    )
    assert over.status_code == 422, over.text
    assert problem_type(over) == "customer-limit-exceeded"
    problem = over.json()
    assert (problem["limit"], problem["sku"], problem["current"]) == (
        "max-quantity-per-sku",
        "T-MUG",
        4,
    )
    assert problem["errors"][0]["field"] == "lines.1.quantity"
    assert orders_of(client, "sku-hoarder") == 1
    # up to the limit is fine; the limits are per customer
    client.place(order_body([("T-MUG", 1)], customer="sku-hoarder"))
    client.place(order_body([("T-MUG", 5)], customer="another-customer"))


def _with(**changes: Any) -> dict[str, Any]:
    body = order_body([("T-TEE", 1)], customer="invalid")
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_with(coupon="FREE"), "coupon"),
        (_with(customer__vip=True), "customer.vip"),
        (_with(lines=[{"sku": "T-TEE", "quantity": 1, "unit_price": 1}]), "lines.0.unit_price"),
        (_with(lines=[{"sku": "T-TEE", "quantity": 1}] * 101), "lines"),
        (_with(lines=[]), "lines"),
        (_with(lines=[{"sku": "T-TEE", "quantity": 0}]), "lines.0.quantity"),
        (_with(lines=[{"sku": "T-TEE", "quantity": 1001}]), "lines.0.quantity"),
        (_with(lines=[{"sku": "T-TEE", "quantity": "2.5"}]), "lines.0.quantity"),
        (_with(customer__email="not-an-email"), "customer.email"),
        (_with(shipping_address__country="Germany"), "shipping_address.country"),
        (_with(shipping_address__country="de"), "shipping_address.country"),
        (_with(currency="euro"), "currency"),
        (_with(customer__name="x" * 201), "customer.name"),
        (_with(payment_token=""), "payment_token"),
        (_with(lines=[{"sku": "T-\u0000TEE", "quantity": 1}]), "lines.0.sku"),
        (_with(metadata={"cart": "a\u0000b"}), "metadata"),
    ],
    ids=[
        "unknown-field",
        "unknown-nested-field",
        "client-price",
        "101-lines",
        "no-lines",
        "quantity-0",
        "quantity-1001",
        "fractional-quantity",
        "bad-email",
        "country-name",
        "lowercase-country",
        "bad-currency-code",
        "long-name",
        "empty-token",
        "nul-in-sku",
        "nul-in-metadata",
    ],
)
def test_an_invalid_order_is_a_422_naming_the_field(
    client: PipelineClient, body: dict[str, Any], field: str
) -> None:
    response = client.http.post("/v1/orders", json=body)
    assert response.status_code == 422, response.text
    assert problem_type(response) == "validation-error"
    assert field in {error["field"] for error in response.json()["errors"]}, response.text
    assert "Traceback" not in response.text
    assert orders_of(client, "invalid") == 0


def test_a_currency_other_than_the_catalogs_is_a_422(client: PipelineClient) -> None:
    client.place(order_body([("T-TEE", 1)], customer="catalog-ready"))
    body = order_body([("T-TEE", 1)], customer="wrong-currency") | {"currency": "USD"}
    response = client.http.post("/v1/orders", json=body)
    assert response.status_code == 422, response.text
    assert problem_type(response) == "currency-mismatch"
    assert response.json()["errors"][0]["field"] == "currency"
    assert orders_of(client, "wrong-currency") == 0
    matching = client.http.post("/v1/orders", json=body | {"currency": "EUR"})
    assert matching.status_code == 202, matching.text
    assert matching.json()["currency"] == "EUR"
