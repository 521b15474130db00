"""Every gateway route needs an API key with the route's scope, and a client sees and touches
only its own orders: another client's order is a 404, exactly like one that does not exist."""

from __future__ import annotations

import subprocess
import sys

import httpx

from kit.settings import REPO_ROOT
from kit.testing.gateway import create_api_key, gateway_client
from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline, wait_until
from orders.domain.api_keys import parse_key
from tests.integration.helpers import PipelineClient, problem_type

READ_ONLY = ("orders:read",)
WRITE_ONLY = ("orders:write",)


def test_a_request_without_a_key_is_a_401_with_a_bearer_challenge(
    client: PipelineClient,
) -> None:
    for method, path in [
        ("GET", "/v1/orders"),
        ("GET", "/v1/orders/any-order"),
        ("POST", "/v1/orders"),
        ("POST", "/v1/orders/any-order/cancel"),
    ]:
        response = httpx.request(
            method, client.gateway + path, headers={"Idempotency-Key": "k-1"}, timeout=10
        )
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert problem_type(response) == "unauthenticated"


def test_a_malformed_or_unknown_key_is_a_401(client: PipelineClient) -> None:
    unknown = "opk_0123456789ab_" + "A" * 43
    for key in ("not-a-key", unknown):
        with gateway_client(client.gateway, key) as stranger:
            response = stranger.get("/v1/orders")
        assert response.status_code == 401, response.text
        assert problem_type(response) == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        assert key not in response.text  # the key is never echoed


def test_a_revoked_key_is_refused_within_the_cache_ttl(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    env = pipeline.service_env("orders")
    key = create_api_key(env, "storefront-revoked", name="to be revoked")
    with gateway_client(client.gateway, key) as storefront:
        assert storefront.get("/v1/orders").status_code == 200
        subprocess.run(
            [sys.executable, "-m", "orders.cli", "keys", "revoke", parse_key(key).key_id],
            env=env,
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )

        def refused_response() -> httpx.Response | None:
            response = storefront.get("/v1/orders")
            return response if response.status_code == 401 else None

        # The gateway trusts a looked-up key for API_KEY_CACHE_TTL (5 s by default).
        refused = wait_until(refused_response, 15, "the revoked key to be refused")
    assert problem_type(refused) == "unauthenticated"


def test_a_key_without_the_routes_scope_is_a_403(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    order_id = client.place(order_body([("T-TEE", 1)], customer="scoped"))["order_id"]
    reader = gateway_client(client.gateway, pipeline.api_key("storefront-1", READ_ONLY))
    writer = gateway_client(client.gateway, pipeline.api_key("storefront-1", WRITE_ONLY))
    with reader, writer:
        refused = [
            reader.post("/v1/orders", json=order_body([("T-TEE", 1)], customer="scoped")),
            reader.post(f"/v1/orders/{order_id}/cancel"),
            reader.post(f"/v1/orders/{order_id}/returns", json={"lines": [], "reason": "x"}),
            writer.get("/v1/orders"),
            writer.get(f"/v1/orders/{order_id}"),
        ]
        for response in refused:
            assert response.status_code == 403, response.text
            assert problem_type(response) == "insufficient-scope"
            assert response.headers["WWW-Authenticate"].startswith(
                'Bearer error="insufficient_scope"'
            )
        # and each key does what its scope allows
        assert reader.get(f"/v1/orders/{order_id}").status_code == 200
        placed = writer.post("/v1/orders", json=order_body([("T-TEE", 1)], customer="scoped-w"))
        assert placed.status_code == 202, placed.text
    assert refused[0].json()["required_scope"] == "orders:write"
    assert refused[3].json()["required_scope"] == "orders:read"
    placed_by_scoped = client.query(
        "orders", "SELECT COUNT(*) FROM orders WHERE customer_id = ?", "scoped"
    )
    assert placed_by_scoped == [(1,)]  # the read-only key placed nothing


def test_another_clients_order_is_a_404_everywhere_and_never_listed(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    order_id = client.place(order_body([("T-TEE", 1)], customer="owned-by-1"))["order_id"]
    with pipeline.gateway("storefront-2") as other:
        answers = [
            other.get(f"/v1/orders/{order_id}"),
            other.get(f"/v1/orders/{order_id}", params={"wait": 1, "status": "PENDING"}),
            other.post(f"/v1/orders/{order_id}/cancel"),
            other.post(
                f"/v1/orders/{order_id}/returns",
                json={"lines": [{"sku": "T-TEE", "quantity": 1}], "reason": "not mine"},
            ),
        ]
        for response in answers:
            assert response.status_code == 404, response.text
            assert problem_type(response) == "order-not-found"
        # exactly the answer for an order that does not exist
        missing = other.get("/v1/orders/00000000-0000-0000-0000-000000000000").json()
        assert answers[0].json().keys() == missing.keys()

        listed = other.get("/v1/orders", params={"customer_id": "owned-by-1"})
        assert listed.status_code == 200
        assert listed.json()["items"] == []
        everything = _all_order_ids(other)
    assert order_id not in everything
    # untouched: the cancel of the other client did nothing
    assert client.order(order_id)["status"] not in ("COMPENSATING", "CANCELLED")
    assert client.query("orders", "SELECT client_id FROM orders WHERE order_id = ?", order_id) == [
        ("storefront-1",)
    ]


def _all_order_ids(http: httpx.Client) -> set[str]:
    seen: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = http.get("/v1/orders", params=params).json()
        seen |= {item["order_id"] for item in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
