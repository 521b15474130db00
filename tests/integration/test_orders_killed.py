"""The orders service is killed (SIGKILL) mid-flow and started again: every order in flight
carries on from its saved state, the deadline of one that waits on payments included.

In flight when it dies: orders waiting for the carrier to collect them, a cancellation
waiting for payments to confirm, and an order whose payment deadline runs out while the
service is down or just after it comes back."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from kit.testing.orders import order_body
from kit.testing.pipeline import wait_until
from tests.integration.helpers import PipelineClient, ServiceControl
from tests.integration.ledger import assert_ledger

# Long enough to outlast what happens before the kill (a cancel's round trip on a busy
# machine), short enough to pass soon after it, while the service is down.
SHORT_DEADLINE = {"PAYMENT_DEADLINE": "PT20S"}


@pytest.mark.timeout(900)  # its own waits add up to more than the default 300 s
async def test_orders_killed_mid_flow_carries_every_saga_on_after_restart(
    client: PipelineClient, services: ServiceControl, initial_stock: Counter[str]
) -> None:
    services.restart("orders", SHORT_DEADLINE)
    services.restart("fulfillment", {"DISPATCH_DELAY_S": "10"})  # keeps shipments in flight
    shipping = await client.place_concurrently(
        [order_body([("T-MUG", 1), ("T-TEE", 1)], customer=f"killed-{n}") for n in range(10)]
    )
    for order_id in shipping:
        client.wait_status(order_id, "FULFILLING")

    services.stop("payments")
    overdue = client.place(order_body([("T-TEE", 1)], customer="killed-overdue"))["order_id"]
    cancelled = client.place(order_body([("T-MUG", 2)], customer="killed-cancel"))["order_id"]
    assert client.wait_status(overdue, "RESERVED")["deadline_at"] is not None
    client.wait_status(cancelled, "RESERVED")
    assert client.cancel(cancelled).status_code == 202
    client.wait_awaiting(cancelled, "COMPENSATING", ["PaymentRefunded"])

    waiting = client.order(overdue)
    assert waiting["status"] == "RESERVED"  # its deadline is still ahead
    deadline_at = datetime.fromisoformat(waiting["deadline_at"])
    pid_before = client.pipeline.pids()["orders"]
    services.stop("orders", kill=True)
    wait_until(
        lambda: datetime.now(UTC) > deadline_at, 60, "the payment deadline to pass, unwatched"
    )
    services.start("orders")  # still with SHORT_DEADLINE
    assert client.pipeline.pids()["orders"] != pid_before

    # The deadline passed with nobody to watch it: the restarted service acts on it.
    # A killed member holds its partitions until its session times out (30 s): allow for it.
    compensating = client.wait_awaiting(overdue, "COMPENSATING", ["PaymentRefunded"], timeout_s=120)
    assert compensating["cancel_reason"] == "payment_deadline_exceeded"
    services.start("payments")

    final = client.wait_settled([*shipping, overdue, cancelled], timeout_s=180)
    assert {final[o]["status"] for o in shipping} == {"COMPLETED"}
    assert (final[overdue]["status"], final[overdue]["cancel_reason"]) == (
        "CANCELLED",
        "payment_deadline_exceeded",
    )
    assert (final[cancelled]["status"], final[cancelled]["cancel_reason"]) == (
        "CANCELLED",
        "customer_cancelled",
    )
    await assert_ledger(client, initial_stock)
