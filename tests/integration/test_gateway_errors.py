"""Bad input gets a clear problem+json answer and stores nothing."""

from __future__ import annotations

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient


def test_an_unknown_sku_is_a_422_naming_the_line(client: PipelineClient) -> None:
    client.place(order_body([("T-TEE", 1)], customer="catalog-ready"))
    response = client.http.post("/v1/orders", json=order_body([("T-TEE", 1), ("NO-SUCH-SKU", 1)]))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/unorderable-lines")
    assert problem["errors"] == [
        {"field": "lines.1.sku", "message": "unknown SKU", "sku": "NO-SUCH-SKU"}
    ]


def test_unknown_fields_and_bad_values_are_rejected_field_by_field(client: PipelineClient) -> None:
    body = order_body([("T-TEE", 0)])
    body["price_override"] = 1
    response = client.http.post("/v1/orders", json=body)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"lines.0.quantity", "price_override"}
    assert "Traceback" not in response.text


def test_an_unknown_order_is_a_404_problem(client: PipelineClient) -> None:
    response = client.http.get("/v1/orders/does-not-exist")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/order-not-found")


def test_nul_characters_are_a_422_not_a_database_error(client: PipelineClient) -> None:
    # PostgreSQL text cannot hold U+0000: schemathesis found this as a 500.
    for response in [
        client.http.get("/v1/orders/abc%00def"),
        client.http.post("/v1/orders/abc%00def/cancel"),
        client.http.get("/v1/orders", params={"customer_id": "c\u0000"}),
        client.http.post("/v1/orders", json=order_body([("T-TEE", 1)], customer="nul\u0000")),
    ]:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
