"""`pipeline reconcile` on real databases of every backend, written with the services' own
tables: exit 0 when the books agree, 1 naming the check and the order when they do not,
2 when a database cannot be read; nothing is ever written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from fulfillment.adapters import tables as fulfillment_db
from inventory.adapters import tables as inventory_db
from kit.database import create_database_engine
from kit.testing.servers import create_postgres_database
from notifications.adapters import tables as notifications_db
from orders.adapters import tables as orders_db
from orders.testing import new_order
from payments.adapters import tables as payments_db
from pipeline_cli.main import app
from pipeline_cli.reconcile import parse_duration

SERVICES = ("orders", "inventory", "payments", "fulfillment", "notifications")
METADATA = {
    "orders": orders_db.OrdersBase.metadata,
    "inventory": inventory_db.InventoryBase.metadata,
    "payments": payments_db.PaymentsBase.metadata,
    "fulfillment": fulfillment_db.FulfillmentBase.metadata,
    "notifications": notifications_db.NotificationsBase.metadata,
}
AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


class Databases:
    """One database per service, its tables created, and the CLI pointed at them."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.engines: dict[str, Engine] = {s: create_database_engine(u) for s, u in urls.items()}
        for service, engine in self.engines.items():
            METADATA[service].create_all(engine)

    def add(self, service: str, *rows: object) -> None:
        with Session(self.engines[service], expire_on_commit=False) as session, session.begin():
            session.add_all(rows)

    def execute(self, service: str, sql: str, **params: Any) -> None:
        with self.engines[service].begin() as connection:
            connection.execute(text(sql), params)

    def reconcile(self, *args: str, env: dict[str, str] | None = None) -> Result:
        options = [] if env else [a for s in SERVICES for a in (f"--{s}-db", self.urls[s])]
        return CliRunner().invoke(app, ["reconcile", *options, *args], env=env)

    def reconcile_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.reconcile("--json", *args)
        report: dict[str, Any] = json.loads(result.stdout)
        return result.exit_code, report

    def completed_order(self, order_id: str, at: datetime = AN_HOUR_AGO) -> None:
        """Two mugs, delivered and paid for, as all five services record it."""
        order = new_order(order_id, at, status="COMPLETED", lines={"T-MUG": 2}, shipping=499)
        order.dispatched_at = order.completed_at = at
        self.add("orders", order)
        self.add(
            "inventory",
            inventory_db.Reservation(
                order_id=order_id,
                sku="T-MUG",
                warehouse="WH-A",
                quantity=2,
                status="shipped",
                updated_at=at,
            ),
        )
        self.add(
            "payments",
            payments_db.Payment(
                payment_id=f"p-{order_id}",
                order_id=order_id,
                amount=order.total,
                currency="EUR",
                status="captured",
                created_at=at,
            ),
        )
        self.add(
            "fulfillment",
            fulfillment_db.Shipment(
                shipment_id=f"s-{order_id}",
                order_id=order_id,
                carrier="sim",
                tracking_number=f"T-{order_id}",
                status="delivered",
                created_at=at,
                dispatched_at=at,
                delivered_at=at,
            ),
        )
        self.add(
            "notifications",
            notifications_db.Notification(
                notification_id=str(uuid.uuid4()),
                order_id=order_id,
                template="order_confirmed",
                channel="email",
                status="sent",
                context={},
                created_at=at,
                sent_at=at,
            ),
        )

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    if request.param == "sqlite":
        urls = {s: f"sqlite:///{tmp_path / (s + '.db')}" for s in SERVICES}
    else:
        server = request.getfixturevalue("postgres")
        suffix = uuid.uuid4().hex[:8]
        urls = {s: create_postgres_database(server, f"{s}_{suffix}") for s in SERVICES}
    databases = Databases(urls)
    databases.add(
        "inventory", inventory_db.StockLevel(sku="T-MUG", warehouse="WH-A", on_hand=98, reserved=0)
    )
    databases.completed_order("o-1")
    try:
        yield databases
    finally:
        databases.close()


def test_books_that_agree_exit_0_with_one_ok_verdict_per_check(databases: Databases) -> None:
    result = databases.reconcile()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1 order read at ")
    assert "1 judged (last changed 1m or more before)" in lines[0]
    verdicts = lines[1:-1]
    assert [line.split()[:2] for line in verdicts] == [
        ["ok", name]
        for name in ("stuck", "stock", "money", "refunds", "shipments", "notifications")
    ] + [["ok", "applied-once"]]
    assert lines[-1] == "consistent"


def test_damage_in_one_database_exits_1_naming_the_check_and_the_order(
    databases: Databases,
) -> None:
    databases.execute("payments", "UPDATE payments SET amount = amount + 100")
    exit_code, report = databases.reconcile_json()
    assert exit_code == 1
    assert report["consistent"] is False
    failed = {check["name"]: check for check in report["checks"] if not check["ok"]}
    assert list(failed) == ["money"]
    assert failed["money"]["problems"] == 2
    assert failed["money"]["examples"] == [
        {
            "subject": "order o-1",
            "detail": "COMPLETED, total 2499: captured 2599 - refunded 0 = 2599, expected 2499",
        },
        {"subject": "order o-1", "detail": "COMPLETED: captured 2599 of its total 2499"},
    ]

    result = databases.reconcile("--examples", "1")
    assert result.exit_code == 1
    assert "FAIL money" in result.stdout
    assert "order o-1: COMPLETED, total 2499: captured 2599" in result.stdout
    assert "… and 1 more (--examples N)" in result.stdout
    assert result.stdout.splitlines()[-1] == "INCONSISTENT: money"


def test_stock_left_reserved_for_a_completed_order_is_found_in_both_counters(
    databases: Databases,
) -> None:
    databases.execute("inventory", "UPDATE reservations SET status = 'reserved'")
    databases.execute("inventory", "UPDATE stock_levels SET reserved = 1")
    exit_code, report = databases.reconcile_json()
    assert exit_code == 1
    [stock] = [check for check in report["checks"] if not check["ok"]]
    assert stock["name"] == "stock"
    assert [(e["subject"], e["detail"]) for e in stock["examples"]] == [
        ("SKU T-MUG", "at WH-A: 1 units reserved, its open reservations hold 2"),
        ("order o-1", "COMPLETED: inventory shipped {}, expected {'T-MUG': 2}"),
        ("order o-1", "COMPLETED: still reserved in inventory {'T-MUG': 2}"),
    ]


def test_an_order_changed_within_the_settle_margin_is_not_judged(databases: Databases) -> None:
    databases.completed_order("o-fresh", at=datetime.now(UTC))
    databases.execute("fulfillment", "DELETE FROM shipments WHERE order_id = 'o-fresh'")
    exit_code, report = databases.reconcile_json()
    assert (exit_code, report["orders"], report["judged"]) == (0, 2, 1)

    exit_code, report = databases.reconcile_json("--settle", "0s")
    assert (exit_code, report["judged"]) == (1, 2)
    [shipments] = [check for check in report["checks"] if not check["ok"]]
    assert shipments["examples"] == [
        {"subject": "order o-fresh", "detail": "COMPLETED: shipments [], expected ['delivered']"}
    ]


def test_an_order_stuck_longer_than_the_age_is_reported(databases: Databases) -> None:
    stuck = new_order("o-stuck", AN_HOUR_AGO, status="PAID")
    databases.add("orders", stuck)
    exit_code, report = databases.reconcile_json("--older-than", "1h30m")
    assert exit_code == 0, report
    exit_code, report = databases.reconcile_json("--older-than", "30m")
    assert exit_code == 1
    [check] = [check for check in report["checks"] if not check["ok"]]
    assert (check["name"], check["examples"]) == (
        "stuck",
        [{"subject": "order o-stuck", "detail": "PAID for 1h, awaiting nothing"}],
    )
    assert report["older_than_s"] == 1800


def test_the_database_urls_come_from_the_environment_too(databases: Databases) -> None:
    env = {f"{service.upper()}_DATABASE_URL": url for service, url in databases.urls.items()}
    result = databases.reconcile(env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 order read")


def test_a_database_that_cannot_be_read_exits_2_naming_the_service(tmp_path: Path) -> None:
    missing = tmp_path / "payments.db"
    urls = {s: f"sqlite:///{tmp_path / (s + '.db')}" for s in SERVICES}
    for service in ("orders", "inventory", "fulfillment", "notifications"):
        Databases({service: urls[service]}).close()
    result = CliRunner().invoke(
        app, ["reconcile", *[a for s in SERVICES for a in (f"--{s}-db", urls[s])]]
    )
    assert result.exit_code == 2
    assert "cannot read the payments database" in result.stderr
    assert not missing.exists()  # opened read-only: no empty database left behind


def test_a_wrong_duration_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["reconcile", "--settle", "soon"])
    assert result.exit_code == 2
    assert "not a duration" in result.output


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("90", timedelta(seconds=90)),
        ("0s", timedelta(0)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w", timedelta(days=7)),
    ],
)
def test_durations_are_ages_like_the_other_commands_take(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["", "m15", "15x", "1h 30m", "-5m", "soon"])
def test_anything_else_is_no_duration(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="not a duration"):
        parse_duration(text)
