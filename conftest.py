"""Fixtures shared by every test suite: real servers, started once per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.testing.servers import create_postgres_database, kafka_broker, postgres_server


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with kafka_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres() -> Iterator[int | str]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once per supported database backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    server = request.getfixturevalue("postgres")
    return create_postgres_database(server, f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def postgresql_url(postgres: int | str) -> str:
    """For what only PostgreSQL has (several concurrent writers, advisory locks)."""
    return create_postgres_database(postgres, f"test_{uuid.uuid4().hex[:12]}")
