"""Fixtures of the orders tests: the gateway's tables on every database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from orders.testing import GatewayHarness


@pytest.fixture
def orders_db(database_url: str) -> Iterator[GatewayHarness]:
    """The orders tables on this test's database, with the runtime's sessions and committer."""
    with GatewayHarness(database_url) as harness:
        yield harness


@pytest.fixture
def sessions(orders_db: GatewayHarness) -> sessionmaker[Session]:
    return orders_db.writes
