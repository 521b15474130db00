"""`pipeline reconcile` on the live pipeline's databases: settled orders reconcile (exit 0),
fresh ones are left for later, and a scratch copy of one service's database with a damaged
row is reported (exit 1) naming the check and the order. The live databases are only read."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from kit.testing.orders import order_body
from kit.testing.pipeline import SERVICES, Pipeline
from pipeline_cli.main import app
from tests.integration.helpers import PipelineClient
from tests.integration.ledger import wait_quiet

pytestmark = pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)


def reconcile(urls: dict[str, str], *options: str) -> tuple[int, dict[str, Any]]:
    databases = [option for s in SERVICES for option in (f"--{s}-db", urls[s])]
    result = CliRunner().invoke(app, ["reconcile", *databases, "--json", *options])
    assert result.exit_code in (0, 1), result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return result.exit_code, report


def scratch_copy(url: str, to: Path) -> str:
    """A consistent copy of a live SQLite database (the backup API, not a file copy that
    could catch the WAL half-written)."""
    live = sqlite3.connect(f"file:{make_url(url).database}?mode=ro", uri=True)
    copy = sqlite3.connect(to)
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()
    return f"sqlite:///{to}"


async def settled_orders(client: PipelineClient) -> tuple[str, str]:
    completed = client.place(order_body([("T-MUG", 2)], customer="reconcile"))["order_id"]
    declined = client.place(
        order_body([("T-TEE", 1)], token="tok_chargeDeclined", customer="reconcile")
    )["order_id"]
    outcomes = client.wait_settled([completed, declined])
    assert (outcomes[completed]["status"], outcomes[declined]["status"]) == (
        "COMPLETED",
        "CANCELLED",
    )
    await wait_quiet(client, timeout_s=120)  # every other scenario's orders settled too
    return completed, declined


async def test_settled_orders_reconcile_and_fresh_ones_wait_for_the_settle_margin(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    await settled_orders(client)

    exit_code, report = reconcile(pipeline.database_urls, "--settle", "0s")
    assert exit_code == 0, [c for c in report["checks"] if not c["ok"]]
    assert report["consistent"] is True
    assert report["judged"] == report["orders"] >= 2
    assert all(check["problems"] == 0 for check in report["checks"])

    # A margin longer than the test session (the default 60 s could pass while it runs).
    exit_code, report = reconcile(pipeline.database_urls, "--settle", "1h")
    assert exit_code == 0
    assert report["settle_s"] == 3600
    assert report["orders"] - report["judged"] >= 2  # at least this test's two


async def test_a_damaged_copy_of_the_payments_database_fails_the_money_check_for_that_order(
    client: PipelineClient, pipeline: Pipeline, tmp_path: Path
) -> None:
    completed, _ = await settled_orders(client)
    urls = dict(pipeline.database_urls)
    urls["payments"] = scratch_copy(urls["payments"], tmp_path / "payments.db")
    with sqlite3.connect(tmp_path / "payments.db") as scratch:
        changed = scratch.execute(
            "UPDATE payments SET amount = amount + 100 WHERE order_id = ?", (completed,)
        ).rowcount
    assert changed == 1

    exit_code, report = reconcile(urls, "--settle", "0s")
    assert exit_code == 1
    failed = [check for check in report["checks"] if not check["ok"]]
    assert [check["name"] for check in failed] == ["money"]
    assert {example["subject"] for example in failed[0]["examples"]} == {f"order {completed}"}
    assert any("captured" in example["detail"] for example in failed[0]["examples"])

    exit_code, _ = reconcile(pipeline.database_urls, "--settle", "0s")
    assert exit_code == 0  # the live books were only read
