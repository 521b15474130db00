"""The ledger check every scenario ends with: once the pipeline is quiet, the books of all
five services agree with each other and with the orders' outcomes.

It covers every order in the pipeline, not only the scenario's own (scenarios share one
pipeline), and reads the services' databases the way an operator would: with
`pipeline reconcile`'s reader and checks (pipeline_cli.reconcile_checks), judging every
order at once since nothing is in flight any more. So, besides what reconcile checks:

- every order is settled: terminal (COMPLETED, CANCELLED, RETURNED), waiting for no
  acknowledgement, its returns refunded; a cancelled one for a known reason;
- stock, per SKU: on hand == initial - shipped + restocked, nothing left reserved; and per
  order, inventory shipped exactly the lines of delivered orders and restocked exactly what
  the completed returns received, and fulfillment delivered exactly one parcel to each
  delivered order and none to any other;
- money, per order: captured - refunded == total (COMPLETED), total - the refunds of its
  returns (RETURNED), 0 (CANCELLED); no payment refunded more than it captured; every
  refund belongs to the order's cancellation or one of its returns;
- nothing applied twice: no event twice in an order's timeline, at most one capture per
  order, one refund per refund id, one notification per (order, template, reference).

A failure names every order and SKU that broke the books.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from kit.testing.pipeline import SERVICES
from pipeline_cli.reconcile_books import read_books
from pipeline_cli.reconcile_checks import Books, Judging, Order, Return, run_checks
from tests.integration.helpers import TERMINAL, PipelineClient, consumer_positions

__all__ = ["Order", "Return", "assert_ledger", "load_orders", "wait_quiet"]

CANCEL_REASONS = frozenset(
    {
        "out_of_stock",
        "declined",
        "insufficient_funds",
        "provider_error",
        "provider_timeout",
        "fraud_rejected",
        "customer_cancelled",
        "stock_deadline_exceeded",
        "payment_deadline_exceeded",
        "shipment_deadline_exceeded",
    }
)


async def assert_ledger(
    client: PipelineClient, initial_stock: Mapping[str, int], timeout_s: float = 180
) -> None:
    """Waits (bounded) for the pipeline to go quiet, then checks every service's books."""
    await wait_quiet(client, timeout_s)
    books = read_books(client.pipeline.database_urls)
    problems = [
        *_reconciled(books),
        *_cancel_reasons(books.orders),
        *_stock_since_the_seed(books, initial_stock),
    ]
    assert not problems, f"{len(problems)} ledger problems:\n" + "\n".join(problems[:60])


def load_orders(client: PipelineClient) -> dict[str, Order]:
    """Every order with its lines and returns, from the orders database."""
    return read_books(client.pipeline.database_urls).orders


async def wait_quiet(client: PipelineClient, timeout_s: float) -> None:
    """Until every order is settled, every outbox empty and every group has read everything,
    with no new message in any topic since the previous look (so no consumer was still
    producing while we looked)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    previous_ends: dict[str, int] | None = None
    while True:
        unsettled = _unsettled(client)
        backlog = {s: n for s in SERVICES if (n := _outbox_rows(client, s))}
        lagging, ends = await consumer_positions(client.pipeline.bootstrap)
        if not unsettled and not backlog and not lagging and ends == previous_ends:
            return
        if loop.time() > deadline:
            raise AssertionError(
                f"the pipeline did not go quiet in {timeout_s:.0f}s:"
                f" {len(unsettled)} orders unsettled {unsettled[:20]},"
                f" outbox rows {backlog}, lagging {lagging[:10]}"
            )
        previous_ends = ends
        await asyncio.sleep(0.3)  # a poll interval, like wait_until's


def _reconciled(books: Books) -> list[str]:
    """Every check of `pipeline reconcile`, judging every order: the pipeline is quiet."""
    last_change = max((o.last_change for o in books.orders.values()), default=books.read_at)
    every_order = Judging(
        max(books.read_at, last_change), settle=timedelta(0), older_than=timedelta(0)
    )
    return [
        f"{finding} [{result.name}]"
        for result in run_checks(books, every_order)
        for finding in result.findings
    ]


def _cancel_reasons(orders: Mapping[str, Order]) -> list[str]:
    return [
        f"order {order.order_id}: cancelled for {order.cancel_reason!r}"
        for order in orders.values()
        if order.status == "CANCELLED" and order.cancel_reason not in CANCEL_REASONS
    ]


def _stock_since_the_seed(books: Books, initial: Mapping[str, int]) -> list[str]:
    """What only a test knows: how much was on the shelves when the pipeline started."""
    shipped = Counter[str]()
    restocked = Counter[str]()
    for order in books.orders.values():
        if order.delivered:
            shipped.update(order.quantities)
            restocked.update(order.restocked())
    on_hand = Counter[str]()
    for level in books.stock_levels:
        on_hand[level.sku] += level.on_hand
    problems = []
    for sku in sorted(set(initial) | set(on_hand)):
        expected = initial.get(sku, 0) - shipped[sku] + restocked[sku]
        if on_hand[sku] != expected:
            problems.append(
                f"SKU {sku}: {on_hand[sku]} on hand, expected {expected}"
                f" = {initial.get(sku, 0)} initial - {shipped[sku]} shipped"
                f" + {restocked[sku]} restocked"
            )
    return problems


def _unsettled(client: PipelineClient) -> list[str]:
    rows = client.query("orders", "SELECT order_id, status, awaiting FROM orders")
    return [
        f"{order_id} {status} awaiting {sorted(_json(awaiting) or {})}"
        for order_id, status, awaiting in rows
        if status not in TERMINAL or _json(awaiting)
    ]


def _outbox_rows(client: PipelineClient, service: str) -> int:
    count: int = client.query(service, "SELECT COUNT(*) FROM outbox")[0][0]
    return count


def _json(value: Any) -> Any:
    """JSON columns come back parsed from PostgreSQL and as text from SQLite."""
    return json.loads(value) if isinstance(value, str) else value
