"""`python -m orders.cli keys ...` against a real database, configured as the service is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner, Result

from kit.database import create_database_engine
from orders.adapters.api_key_store import ApiKeyInfo, KeyRejectedError, Rejection, authenticate
from orders.cli import app
from orders.domain.api_keys import parse_key


class Keys:
    """The CLI with DATABASE_URL pointing at the test database, and that database."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.runner = CliRunner()
        self.engine: Engine = create_database_engine(database_url)

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(app, ["keys", *args], env={"DATABASE_URL": self.database_url})

    def create(self, client: str = "shop-1", *args: str) -> dict[str, Any]:
        result = self("create", "--client", client, "--name", "web shop", "--json", *args)
        assert result.exit_code == 0, result.output
        created: dict[str, Any] = json.loads(result.stdout)
        return created

    def listed(self, *args: str) -> list[dict[str, Any]]:
        result = self("list", "--json", *args)
        assert result.exit_code == 0, result.output
        listed: list[dict[str, Any]] = json.loads(result.stdout)
        return listed

    def authenticate(self, token: str) -> ApiKeyInfo:
        with sessionmaker(self.engine)() as session:
            return authenticate(session, parse_key(token))


@pytest.fixture
def keys(database_url: str) -> Iterator[Keys]:
    keys = Keys(database_url)
    yield keys
    keys.engine.dispose()


def test_create_makes_the_tables_and_a_working_key_with_both_scopes_by_default(
    keys: Keys,
) -> None:
    assert "api_keys" not in inspect(keys.engine).get_table_names()
    created = keys.create("shop-1")
    assert set(created) == {
        "key",
        "key_id",
        "client_id",
        "name",
        "scopes",
        "created_at",
        "revoked_at",
    }
    assert created["key"].startswith(f"opk_{created['key_id']}_")
    assert (created["client_id"], created["name"], created["revoked_at"]) == (
        "shop-1",
        "web shop",
        None,
    )
    assert created["scopes"] == ["orders:read", "orders:write"]
    assert keys.authenticate(created["key"]).client_id == "shop-1"


def test_create_prints_the_key_once_for_a_person(keys: Keys) -> None:
    result = keys("create", "--client", "shop-1", "--name", "web shop")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    token = lines[-1]
    key_id = parse_key(token).key_id
    assert f"API key {key_id} for client shop-1 (web shop)" in result.stdout
    assert "scopes: orders:read orders:write" in result.stdout
    assert result.stdout.count(parse_key(token).secret) == 1


def test_create_with_chosen_scopes(keys: Keys) -> None:
    created = keys.create("shop-1", "--scope", "orders:read")
    assert created["scopes"] == ["orders:read"]
    both = keys.create("shop-1", "--scope", "orders:write", "--scope", "orders:read")
    assert both["scopes"] == ["orders:read", "orders:write"]


@pytest.mark.parametrize(
    "args",
    [
        ["--client", "shop-1", "--name", "x", "--scope", "orders:admin"],
        ["--client", "shop one", "--name", "x"],
        ["--client", "shop-1", "--name", "   "],
        ["--client", "shop-1"],
    ],
)
def test_create_refuses_invalid_input_and_stores_nothing(keys: Keys, args: list[str]) -> None:
    result = keys("create", *args)
    assert result.exit_code == 2, result.output
    assert keys.listed() == []


def test_list_shows_keys_but_never_secrets(keys: Keys) -> None:
    first, second = keys.create("shop-1"), keys.create("shop-2", "--scope", "orders:read")
    result = keys("list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["KEY", "ID", "CLIENT", "NAME", "SCOPES", "CREATED", "REVOKED"]
    assert [row.split()[0] for row in rows] == [first["key_id"], second["key_id"]]
    assert "orders:read,orders:write" in rows[0]
    for created in (first, second):
        assert parse_key(created["key"]).secret not in result.stdout


def test_list_filters_by_client(keys: Keys) -> None:
    keys.create("shop-1")
    mine = keys.create("shop-2")
    listed = keys.listed("--client", "shop-2")
    assert [(k["key_id"], k["client_id"]) for k in listed] == [(mine["key_id"], "shop-2")]
    assert "key" not in listed[0]
    assert keys.listed("--client", "shop-3") == []


def test_revoke_rejects_the_key_and_shows_in_the_list(keys: Keys) -> None:
    created, kept = keys.create("shop-1"), keys.create("shop-1")
    result = keys("revoke", created["key_id"])
    assert result.exit_code == 0, result.output
    assert f"revoked API key {created['key_id']} of client shop-1" in result.stdout
    with pytest.raises(KeyRejectedError) as error:
        keys.authenticate(created["key"])
    assert error.value.reason is Rejection.REVOKED
    assert keys.authenticate(kept["key"]) is not None
    revoked = {k["key_id"]: k["revoked_at"] for k in keys.listed()}
    assert revoked[created["key_id"]] is not None
    assert revoked[kept["key_id"]] is None
    row = [line for line in keys("list").stdout.splitlines() if created["key_id"] in line]
    assert row[0].split()[-1] != "-"


def test_revoking_twice_is_harmless(keys: Keys) -> None:
    created = keys.create()
    assert keys("revoke", created["key_id"]).exit_code == 0
    first_revocation = keys.listed()[0]["revoked_at"]
    again = keys("revoke", created["key_id"])
    assert again.exit_code == 0, again.output
    assert "already revoked" in again.stdout
    assert keys.listed()[0]["revoked_at"] == first_revocation


def test_revoking_an_unknown_key_fails(keys: Keys) -> None:
    keys.create()
    result = keys("revoke", "0123456789ab")
    assert result.exit_code == 1
    assert "no API key 0123456789ab" in result.stderr
    assert keys.listed()[0]["revoked_at"] is None


def test_without_a_database_url_the_keys_go_to_the_services_embedded_sqlite_file(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "not-yet"
    result = CliRunner().invoke(
        app,
        ["keys", "create", "--client", "shop-1", "--name", "local", "--json"],
        env={"DATABASE_URL": "", "DATA_DIR": str(data_dir)},
    )
    assert result.exit_code == 0, result.output
    keys = Keys(f"sqlite:///{data_dir / 'orders.db'}")
    try:
        assert keys.authenticate(json.loads(result.stdout)["key"]).client_id == "shop-1"
    finally:
        keys.engine.dispose()
