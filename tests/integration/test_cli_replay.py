"""`pipeline replay` on the real broker of the running pipeline: the log of a mix of orders
(delivered, declined, out of stock, cancelled by the customer while it was in flight,
returned) replayed into an empty database rebuilds exactly the live orders — status,
totals, refunds, returns and every timeline entry with its event id — while nothing is
published, no notification sent and no payment made; twice is once; the notifications
log is rebuilt without telling anyone.

The CLI runs in-process (typer's CliRunner, in a thread of its own because each command runs
its own event loop) with the orders service's environment.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from kit.database import create_database_engine
from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from orders.replay_compare import differences, read_orders
from tests.integration.cli import run_cli
from tests.integration.helpers import PipelineClient, consumer_positions
from tests.integration.ledger import assert_ledger, wait_quiet

pytestmark = pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)

NOTIFICATION_LOG = (
    "SELECT order_id, template, reference, channel, status, recipient, subject, body"
    " FROM notification_log WHERE order_id IN ({}) ORDER BY order_id, template, reference"
)


def replay_json(pipeline: Pipeline, *args: str) -> dict[str, Any]:
    result = run_cli(pipeline, "replay", *args, "--json")
    assert result.exit_code == 0, f"pipeline replay {' '.join(args)}: {result.output}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def place_the_mix(client: PipelineClient) -> dict[str, str]:
    """One order of each ending, all in flight at once; the cancel meets its order while
    inventory, payments and fulfillment are still answering it."""
    customer = "replay"
    placed = {
        kind: client.place(order_body(lines, token=token, customer=customer))["order_id"]
        for kind, lines, token in (
            ("delivered", [("T-MUG", 1)], "tok_visa"),
            ("declined", [("T-TEE", 1)], "tok_chargeDeclined"),
            ("out_of_stock", [("T-RARE", 5)], "tok_visa"),
            ("cancelled", [("T-MUG", 2)], "tok_visa"),
            ("returned", [("T-MUG", 1), ("T-TEE", 1)], "tok_visa"),
        )
    }
    response = client.cancel(placed["cancelled"])
    assert response.status_code == 202, response.text

    order_id = placed["returned"]
    assert client.wait_settled([order_id])[order_id]["status"] == "COMPLETED"
    response = client.request_return(order_id, [("T-MUG", 1), ("T-TEE", 1)])
    assert response.status_code == 202, response.text
    return_id = response.json()["return_id"]
    client.wait_order(order_id, lambda o: o["returns"][0]["label_reference"], "labelled")
    assert client.receive_return(return_id).status_code == 202

    final = client.wait_settled(placed.values())
    endings = {kind: (final[o]["status"], final[o]["cancel_reason"]) for kind, o in placed.items()}
    assert endings == {
        "delivered": ("COMPLETED", None),
        "declined": ("CANCELLED", "declined"),
        "out_of_stock": ("CANCELLED", "out_of_stock"),
        "cancelled": ("CANCELLED", "customer_cancelled"),
        "returned": ("RETURNED", None),
    }
    return placed


def side_effects(client: PipelineClient, order_ids: list[str]) -> dict[str, Any]:
    """Everything a replay must leave alone: what the customers were told, the money, and
    what each service's consumer sees."""
    marks = ", ".join("?" * len(order_ids))
    return {
        "notification_log": client.query(
            "notifications", NOTIFICATION_LOG.format(marks), *order_ids
        ),
        "notifications": client.query("notifications", "SELECT COUNT(*) FROM notification_log"),
        "payments": client.query(
            "payments",
            "SELECT payment_id, status, amount, refunded_amount FROM payments ORDER BY payment_id",
        ),
        "refunds": client.query("payments", "SELECT refund_id, amount FROM refunds ORDER BY 1"),
    }


def orders_in(url: str, order_ids: list[str]) -> dict[str, Any]:
    engine = create_database_engine(url)
    try:
        with Session(engine) as session:
            return read_orders(session, order_ids)
    finally:
        engine.dispose()


async def test_a_replay_of_the_log_into_an_empty_database_reproduces_the_live_orders_exactly(
    client: PipelineClient, initial_stock: Counter[str], tmp_path: Path
) -> None:
    pipeline = client.pipeline
    since = datetime.now(UTC).isoformat()
    placed = place_the_mix(client)
    order_ids = sorted(placed.values())
    await wait_quiet(client, timeout_s=120)
    _, ends_before = await consumer_positions(pipeline.bootstrap)
    untouched = side_effects(client, order_ids)
    rebuilt_url = f"sqlite:///{tmp_path / 'orders-rebuilt.db'}"
    live_url = pipeline.database_urls["orders"]
    compared = [argument for o in order_ids for argument in ("--order", o)]

    first = replay_json(
        pipeline, "orders", "--into", rebuilt_url, "--from", since,
        "--compare-with", live_url, *compared,
    )  # fmt: skip

    assert first["differences"] == []
    assert first["dead_lettered"] == 0
    assert first["notes"]["not_reproduced"] == 0
    assert {e["event_type"] for e in first["emitted"]} >= {"CancelShipment", "OrderCompleted"}
    rebuilt = orders_in(rebuilt_url, order_ids)
    assert sorted(rebuilt) == order_ids
    assert differences(orders_in(live_url, order_ids), rebuilt) == []
    cancelled = [step.event_type for step in rebuilt[placed["cancelled"]].timeline]
    assert "CustomerCancel" in cancelled  # under the id of its OrderCancellationRequested

    again = replay_json(
        pipeline, "orders", "--into", rebuilt_url, "--from", since,
        "--compare-with", live_url, *compared,
    )  # fmt: skip

    assert (again["handled"], again["changes"], again["emitted"]) == (0, {}, [])
    assert again["duplicates"] == first["handled"]
    assert again["differences"] == []

    notifications_url = f"sqlite:///{tmp_path / 'notifications-rebuilt.db'}"
    notified = replay_json(pipeline, "notifications", "--into", notifications_url, "--from", since)

    assert notified["suppressed_sends"] > len(order_ids)  # a confirmation each, and more
    engine = create_database_engine(notifications_url)
    marks = ", ".join("?" * len(order_ids))
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(NOTIFICATION_LOG.format(marks), tuple(order_ids))
        rebuilt_log = [tuple(row) for row in rows]
    engine.dispose()
    assert rebuilt_log == untouched["notification_log"]

    _, ends_after = await consumer_positions(pipeline.bootstrap)
    assert ends_after == ends_before, "a replay published something"
    assert side_effects(client, order_ids) == untouched
    await assert_ledger(client, initial_stock)


def test_replaying_a_service_with_side_effects_is_refused_with_the_reason(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    for service, reason in (
        ("payments", "never move money"),
        ("fulfillment", "never ship"),
        ("inventory", "catalog seed"),
    ):
        result = run_cli(pipeline, "replay", service, "--into", f"sqlite:///{tmp_path}/x.db")
        assert result.exit_code == 2, result.output
        assert reason in result.output
    assert not (tmp_path / "x.db").exists()


def test_a_dry_run_prints_what_would_change_and_keeps_nothing(
    client: PipelineClient, tmp_path: Path
) -> None:
    since = datetime.now(UTC).isoformat()
    order_id = client.place(order_body([("T-TEE", 1)], token="tok_chargeDeclined"))["order_id"]
    client.wait_settled([order_id])
    url = f"sqlite:///{tmp_path / 'dry.db'}"

    result = run_cli(
        client.pipeline, "replay", "orders", "--into", url, "--from", since, "--dry-run"
    )

    assert result.exit_code == 0, result.output
    assert "(dry run: rolled back, nothing kept)" in result.output
    inserted = re.search(r"^  orders +(\d+) ", result.output, re.MULTILINE)
    assert inserted is not None and int(inserted[1]) >= 1, result.output
    assert re.search(r"^  orders.events +OrderCancelled +\d+$", result.output, re.MULTILINE)
    engine = create_database_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM sqlite_master").all() == []
    engine.dispose()
