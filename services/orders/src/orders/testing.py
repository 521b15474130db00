"""The orders gateway's tables on a real database, for tests that mount only the routes they test.

For tests: the kit's `ServiceHarness` on the orders tables (sessions, group committer,
problem handlers) without the service's own routes, consumer or middleware; orders stored
as the gateway writes them; a clock that moves only when told; and the check of a
problem+json answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self

import httpx
from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from kit.problems import PROBLEM_BASE, PROBLEM_JSON
from kit.service import ServiceDefinition
from kit.testing.service_harness import UNIT_PRICE, ServiceHarness
from orders import contracts
from orders.adapters.tables import Order, OrderLine, OrdersBase
from orders.domain.pricing import RequestedLine
from orders.domain.saga import OrderStatus
from orders.handlers.placing import PlaceOrder
from orders.settings import OrdersSettings

# Two storefront clients: whatever one stores, the other must never see.
SHOP, OTHER_SHOP = "shop-1", "shop-2"


class GatewayHarness(ServiceHarness):
    """The orders runtime on its database, its tables created, with no routes of its own.

    A context manager: leaving it disposes of the engines.
    """

    def __init__(self, database_url: str) -> None:
        definition = ServiceDefinition(
            name="orders", metadata=OrdersBase.metadata, routes=contracts.PUBLISHES
        )
        super().__init__(OrdersSettings(database_url=database_url), definition)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def writes(self) -> sessionmaker[Session]:
        """Sessions as writers open them; what they load stays readable after the commit."""
        return self.runtime.session_factory

    @property
    def reads(self) -> sessionmaker[Session]:
        """Sessions as GET endpoints open them: on SQLite they never wait for a writer."""
        return self.runtime.read_session_factory

    def add(self, *rows: object) -> None:
        """`rows` stored in one committed transaction."""
        with self.writes.begin() as session:
            session.add_all(rows)

    def app(self, *routers: APIRouter) -> FastAPI:
        """An app with only `routers`, its group committer running: errors are problem+json,
        and `RuntimeDep` is this runtime."""
        app = super().app()
        for router in routers:
            app.include_router(router)
        return app


def new_order(
    order_id: str | None = None,
    placed_at: datetime | None = None,
    *,
    client_id: str = SHOP,
    customer_id: str = "c-1",
    status: str = OrderStatus.PENDING,
    lines: Mapping[str, int] | None = None,
    shipping: int = 0,
) -> Order:
    """An order row as the gateway stores it, not added to any session yet.

    A fresh id and placed now unless given; `lines` (sku -> quantity, one mug by default)
    at the kit's UNIT_PRICE each.
    """
    placed_at = placed_at or datetime.now(UTC)
    quantities = {"T-MUG": 1} if lines is None else lines
    subtotal = UNIT_PRICE * sum(quantities.values())
    return Order(
        order_id=order_id or str(uuid.uuid4()),
        client_id=client_id,
        customer_id=customer_id,
        customer_email=f"{customer_id}@example.com",
        customer_name="Test Customer",
        shipping_address={"country": "DE"},
        notes=None,
        client_metadata={},
        currency="EUR",
        subtotal=subtotal,
        shipping=shipping,
        total=subtotal + shipping,
        status=status,
        placed_at=placed_at,
        updated_at=placed_at,
        status_since=placed_at,
        awaiting={},
        retry_attempts=0,
        refunded=0,
        lines=[
            OrderLine(line_no=n, sku=sku, name=sku, quantity=quantity, unit_price=UNIT_PRICE)
            for n, (sku, quantity) in enumerate(quantities.items(), start=1)
        ],
    )


class ManualClock:
    """Seconds since the epoch that pass only when a test moves `now`; called like
    `time.time`, so it stands in for it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """`response` is a problem+json document of `status` and type slug `kind`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + kind
    assert body["status"] == status
    return body


def place_command(
    order_id: str, quantity: int = 1, *, client_id: str = SHOP, sku: str = "MUG"
) -> PlaceOrder:
    """What the gateway hands `place_order` for one line of `sku`, paid with a good card."""
    return PlaceOrder(
        order_id=order_id,
        client_id=client_id,
        customer_id="c-1",
        customer_email="c@example.com",
        customer_name="C",
        shipping_address={
            "name": "C",
            "line1": "1 Street",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        lines=(RequestedLine(sku, quantity),),
        payment_token="tok_visa",
    )
