"""A handler bug hits one order in payments: its OrderPlaced is dead-lettered, and what comes
after it for that order (StockReserved) is parked instead of handled around the hole, while
every other order completes. Redriven with the bug still there, it is dead-lettered again,
its attempts counting on; redriven after the fix, the order completes as if nothing had
happened.

The bug is the fire drill (DRILL_FAIL_MESSAGES). Payments and inventory are stopped while
the order is placed, so that payments dead-letters the OrderPlaced before inventory's
StockReserved exists: the parking is certain, not a race."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline, wait_until
from tests.integration.cli import dlq, gauge, listed
from tests.integration.helpers import PipelineClient, ServiceControl
from tests.integration.ledger import assert_ledger


def dead_letters_of(pipeline: Pipeline, key: str, *flags: str) -> list[dict[str, Any]]:
    """payments' dead letters of `key` on orders.events.dlq, as `dlq list --json` shows them."""
    return [d for d in listed(pipeline, "orders.events", key, *flags) if d["group"] == "payments"]


def payments_rows(client: PipelineClient, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return client.query("payments", sql, *params)


def wait_gauges_agree_with_the_database(client: PipelineClient, pipeline: Pipeline) -> None:
    """Payments' parking gauges say what its tables hold (other scenarios' rows included)."""

    def agree() -> bool:
        parked = payments_rows(client, "SELECT COUNT(*) FROM parked_messages")[0][0]
        blocking = payments_rows(
            client, "SELECT COUNT(*) FROM dead_letters WHERE status = 'blocking'"
        )[0][0]
        return bool(
            gauge(pipeline, "payments", "pipeline_parked_messages") == parked
            and gauge(pipeline, "payments", "pipeline_dead_letters_open") == blocking
        )

    wait_until(agree, 30, "payments' parking gauges to match its tables")


@pytest.mark.parametrize("pipeline", ["sqlite"], indirect=True)
async def test_a_dead_lettered_order_waits_parked_and_completes_once_redriven_after_the_fix(
    client: PipelineClient,
    pipeline: Pipeline,
    services: ServiceControl,
    initial_stock: Counter[str],
) -> None:
    # The orders wait on a stopped inventory, then on payments through two redrives and
    # restarts: no deadline may be what ends the wait on a slow machine.
    services.restart("orders", {"STOCK_DEADLINE": "PT15M", "PAYMENT_DEADLINE": "PT15M"})
    services.stop("payments")
    services.stop("inventory")
    order_id = client.place(order_body([("T-MUG", 1)], customer="dlq-parking"))["order_id"]
    bystanders = [
        client.place(order_body([("T-MUG", 1)], customer=f"dlq-bystander-{n}"))["order_id"]
        for n in range(3)
    ]
    services.restart("payments", {"DRILL_FAIL_MESSAGES": f"OrderPlaced:{order_id}"})
    dead_letter = "SELECT message_id, attempts FROM dead_letters WHERE key = ? AND status = ?"
    [(message_id, attempts)] = wait_until(
        lambda: payments_rows(client, dead_letter, order_id, "blocking"),
        60,
        "payments to dead-letter the order's OrderPlaced",
    )
    assert attempts == 3

    [first] = wait_until(lambda: dead_letters_of(pipeline, order_id), 60, "`dlq list` to show it")
    assert (first["event_type"], first["error_type"]) == ("OrderPlaced", "DrillFailure")
    assert (first["attempts"], first["message_id"]) == (3, message_id)

    services.start("inventory")  # its StockReserved for the order now reaches payments
    parked = "SELECT headers FROM parked_messages WHERE key = ?"
    [(headers,)] = wait_until(
        lambda: payments_rows(client, parked, order_id), 60, "the StockReserved to be parked"
    )
    parked_headers = json.loads(headers) if isinstance(headers, str) else headers
    assert dict(parked_headers)["event_type"] == "StockReserved"
    finished = client.wait_terminal(bystanders)
    assert {o["status"] for o in finished.values()} == {"COMPLETED"}
    assert client.order(order_id)["status"] == "RESERVED"  # no capture without the intent
    wait_gauges_agree_with_the_database(client, pipeline)
    assert (gauge(pipeline, "payments", "pipeline_parked_messages") or 0) >= 1

    # Redriven while the bug is still deployed: dead-lettered again, counting on.
    redriven = dlq(pipeline, "redrive", first["id"], "--yes")
    assert redriven.returncode == 0, redriven.stderr
    assert f"redriven {first['id']} -> orders.events for payments" in redriven.stdout
    wait_until(
        lambda: payments_rows(client, dead_letter, order_id, "blocking") == [(message_id, 6)],
        60,
        "the redriven OrderPlaced to be dead-lettered again",
    )
    assert len(payments_rows(client, parked, order_id)) == 1  # still waiting
    [second] = wait_until(
        lambda: [d for d in dead_letters_of(pipeline, order_id) if d["id"] != first["id"]],
        60,
        "`dlq list` to show the second dead letter",
    )
    assert (second["attempts"], second["redrives"], second["message_id"]) == (6, 1, message_id)

    # The fix is deployed; the redrive goes through and the parked StockReserved follows it.
    services.restart("payments")
    redriven = dlq(pipeline, "redrive", second["id"], "--yes")
    assert redriven.returncode == 0, redriven.stderr
    final = client.wait_settled([order_id])[order_id]
    assert final["status"] == "COMPLETED"
    timeline = [entry["event_type"] for entry in final["timeline"]]
    assert timeline.count("PaymentCaptured") == 1
    assert payments_rows(client, dead_letter, order_id, "released") == [(message_id, 6)]
    assert payments_rows(client, parked, order_id) == []
    states = {d["id"]: d["state"] for d in dead_letters_of(pipeline, order_id, "--all")}
    assert states == {first["id"]: "redriven", second["id"]: "redriven"}
    wait_gauges_agree_with_the_database(client, pipeline)
    await assert_ledger(client, initial_stock)
