"""API keys over HTTP: 401 without a valid key, 403 without the scope, on every database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from orders.adapters.api_key_store import ApiKeyAuthenticator, create_key, revoke_key
from orders.adapters.tables import Order
from orders.domain.api_keys import ALL_SCOPES, generate_key
from orders.entrypoints.auth import (
    AUTH_RESPONSES,
    Caller,
    ReadCaller,
    WriteCaller,
    install_api_key_authenticator,
    require_scope,
)
from orders.testing import GatewayHarness, ManualClock, assert_problem

TTL = timedelta(seconds=5)

# One read and one write endpoint, each answering who called.
things = APIRouter()


@things.get("/things", responses=AUTH_RESPONSES)
def read_things(caller: ReadCaller) -> dict[str, str]:
    return {"client_id": caller.client_id, "key_id": caller.key_id}


@things.post("/things", responses=AUTH_RESPONSES)
async def write_things(caller: WriteCaller) -> dict[str, str]:
    return {"client_id": caller.client_id, "key_id": caller.key_id}


class Gateway:
    """The endpoints on the orders runtime's database, and the keys that call them."""

    def __init__(self, orders_db: GatewayHarness) -> None:
        self.runtime = orders_db.runtime
        self.clock = ManualClock()
        self.app = orders_db.app(things)

    def use_clock(self) -> None:
        install_api_key_authenticator(
            self.app,
            ApiKeyAuthenticator(self.runtime.read_session_factory, TTL, clock=self.clock),
        )

    def key(self, client_id: str = "shop-1", scopes: tuple[str, ...] = ALL_SCOPES) -> str:
        with self.runtime.session_factory.begin() as session:
            return create_key(session, client_id, "test", scopes, datetime.now(UTC)).token

    def revoke(self, token: str) -> None:
        key_id = token.split("_")[1]
        with self.runtime.session_factory.begin() as session:
            assert revoke_key(session, key_id, datetime.now(UTC)) is not None


@pytest.fixture
def gateway(orders_db: GatewayHarness) -> Gateway:
    return Gateway(orders_db)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[TestClient]:
    with TestClient(gateway.app) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_key_is_the_caller_of_both_kinds_of_endpoint(
    gateway: Gateway, client: TestClient
) -> None:
    token = gateway.key("shop-1")
    key_id = token.split("_")[1]
    for method in ("GET", "POST"):
        response = client.request(method, "/things", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {"client_id": "shop-1", "key_id": key_id}


def test_the_authorization_scheme_is_case_insensitive(gateway: Gateway, client: TestClient) -> None:
    token = gateway.key()
    assert client.get("/things", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_a_request_without_a_key_is_401(client: TestClient) -> None:
    body = assert_problem(client.get("/things"), 401, "unauthenticated")
    assert "Authorization: Bearer" in str(body["detail"])
    assert_problem(client.post("/things"), 401, "unauthenticated")


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic c2hvcDpzZWNyZXQ=",
        "Token opk_0123456789ab_" + "a" * 43,
        "Bearer garbage",
        "Bearer opk_0123456789ab",
        "Bearer opk_0123456789ab_short",
        "Bearer opk_0123456789ab_" + "a" * 43 + " extra",
        "opk_0123456789ab_" + "a" * 43,  # no scheme at all
    ],
)
def test_a_malformed_authorization_header_is_401(client: TestClient, authorization: str) -> None:
    response = client.get("/things", headers={"Authorization": authorization})
    body = assert_problem(response, 401, "unauthenticated")
    assert "a" * 43 not in response.text
    assert set(body) == {"type", "title", "status", "detail", "instance"}


def test_an_unknown_key_is_401(gateway: Gateway, client: TestClient) -> None:
    gateway.key()
    token = generate_key().token
    response = client.get("/things", headers=bearer(token))
    assert_problem(response, 401, "unauthenticated")
    assert token.split("_", 2)[2] not in response.text


def test_a_wrong_secret_is_401_and_not_echoed(gateway: Gateway, client: TestClient) -> None:
    token = gateway.key()
    wrong_secret = generate_key().secret
    response = client.get("/things", headers=bearer(f"opk_{token.split('_')[1]}_{wrong_secret}"))
    body = assert_problem(response, 401, "unauthenticated")
    assert wrong_secret not in response.text
    assert body["detail"] == "the API key is not valid"


def test_a_revoked_key_is_401(gateway: Gateway, client: TestClient) -> None:
    token = gateway.key()
    gateway.revoke(token)
    assert_problem(client.get("/things", headers=bearer(token)), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("scope", "allowed", "refused", "missing"),
    [
        pytest.param("orders:read", "GET", "POST", "orders:write", id="read-only-may-not-write"),
        pytest.param("orders:write", "POST", "GET", "orders:read", id="write-only-may-not-read"),
    ],
)
def test_a_key_without_the_endpoints_scope_is_403_naming_the_scope(
    gateway: Gateway, client: TestClient, scope: str, allowed: str, refused: str, missing: str
) -> None:
    token = gateway.key(scopes=(scope,))
    assert client.request(allowed, "/things", headers=bearer(token)).status_code == 200
    response = client.request(refused, "/things", headers=bearer(token))
    body = assert_problem(response, 403, "insufficient-scope")
    assert body["required_scope"] == missing
    assert missing in str(body["detail"])


def test_a_401_challenges_for_a_bearer_token(gateway: Gateway, client: TestClient) -> None:
    assert client.get("/things").headers["WWW-Authenticate"] == "Bearer"
    response = client.get("/things", headers=bearer(generate_key().token))
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "headers" not in response.json()


def test_a_403_names_the_missing_scope_in_its_challenge(
    gateway: Gateway, client: TestClient
) -> None:
    token = gateway.key(scopes=("orders:read",))
    response = client.post("/things", headers=bearer(token))
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="orders:write"'
    )


def test_a_revoked_key_keeps_working_until_the_cache_ttl_has_passed(
    gateway: Gateway, client: TestClient
) -> None:
    gateway.use_clock()
    token = gateway.key()
    assert client.get("/things", headers=bearer(token)).status_code == 200
    gateway.revoke(token)
    gateway.clock.now += TTL.total_seconds() - 0.5
    assert client.get("/things", headers=bearer(token)).status_code == 200
    gateway.clock.now += 0.5
    assert_problem(client.get("/things", headers=bearer(token)), 401, "unauthenticated")


def test_keys_of_several_clients_are_told_apart(gateway: Gateway, client: TestClient) -> None:
    first, second = gateway.key("shop-1"), gateway.key("shop-2")
    for _ in range(2):  # the second round comes from the cache
        assert client.get("/things", headers=bearer(first)).json()["client_id"] == "shop-1"
        assert client.get("/things", headers=bearer(second)).json()["client_id"] == "shop-2"


def test_the_openapi_document_declares_the_bearer_scheme_and_the_auth_errors(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method in ("get", "post"):
        operation = document["paths"]["/things"][method]
        assert operation["security"] == [{"ApiKey": []}]
        assert {"401", "403"} <= set(operation["responses"])


def test_an_unknown_scope_is_refused_when_the_route_is_declared() -> None:
    with pytest.raises(ValueError, match="orders:admin"):
        require_scope("orders:admin")


def test_a_caller_owns_only_its_own_client_orders() -> None:
    caller = Caller(client_id="shop-1", key_id="0123456789ab", scopes=frozenset())
    assert caller.owns(Order(client_id="shop-1"))
    assert not caller.owns(Order(client_id="shop-2"))
