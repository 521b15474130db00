"""The ledger check every scenario ends with: once the pipeline is quiet, the books of all
five services agree with each other and with the orders' outcomes.

It covers every order in the pipeline, not only the scenario's own (scenarios share one
pipeline), and reads the services' databases the way an operator would:

- every order is settled: terminal (COMPLETED, CANCELLED, RETURNED) and waiting for no
  acknowledgement;
- stock, per SKU: on hand == initial - shipped + restocked, nothing left reserved; and per
  order, inventory shipped exactly the lines of delivered orders and restocked exactly what
  the completed returns received, and fulfillment delivered exactly one parcel to each
  delivered order and none to any other;
- money, per order: captured - refunded == total (COMPLETED), total - the refunds of its
  returns (RETURNED), 0 (CANCELLED); the same summed over all orders; no payment refunded
  more than it captured;
- nothing applied twice: no event twice in an order's timeline, at most one capture per
  order, one refund per refund id, one notification per (order, template, reference).

A failure names every order and SKU that broke the books.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kit.testing.pipeline import SERVICES
from tests.integration.helpers import DELIVERED, TERMINAL, PipelineClient, consumer_positions

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


@dataclass
class Return:
    return_id: str
    status: str
    received: Counter[str]
    refund_amount: int | None
    requested_at: Any


@dataclass
class Order:
    order_id: str
    status: str
    cancel_reason: str | None
    awaiting: list[str]
    shipping: int
    total: int
    refunded: int
    quantities: Counter[str] = field(default_factory=Counter)
    unit_prices: dict[str, int] = field(default_factory=dict)
    returns: list[Return] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return self.status in TERMINAL and not self.awaiting

    @property
    def delivered(self) -> bool:
        return self.status in DELIVERED

    def completed_returns(self) -> list[Return]:
        return sorted(
            (r for r in self.returns if r.status == "refunded"), key=lambda r: r.requested_at
        )

    def restocked(self) -> Counter[str]:
        units = Counter[str]()
        for completed in self.completed_returns():
            units.update(completed.received)
        return units

    def expected_refunds(self) -> list[tuple[Return, int]]:
        """The refund rule: the received units at their price, plus the shipping fee with the
        return that brings every unit of the order back."""
        expected = []
        returned = Counter[str]()
        for completed in self.completed_returns():
            amount = sum(q * self.unit_prices.get(sku, 0) for sku, q in completed.received.items())
            whole_before = all(returned[s] >= q for s, q in self.quantities.items())
            returned.update(completed.received)
            whole_now = all(returned[s] >= q for s, q in self.quantities.items())
            if whole_now and not whole_before:
                amount += self.shipping
            expected.append((completed, amount))
        return expected

    def expected_net(self) -> int:
        """What the customer should have paid in the end: captured minus refunded."""
        if self.status == "CANCELLED":
            return 0
        return self.total - sum(amount for _, amount in self.expected_refunds())


async def assert_ledger(
    client: PipelineClient, initial_stock: Mapping[str, int], timeout_s: float = 180
) -> None:
    """Waits (bounded) for the pipeline to go quiet, then checks every service's books."""
    await wait_quiet(client, timeout_s)
    orders = load_orders(client)
    problems = [
        *_settlement(orders),
        *_stock(client, orders, initial_stock),
        *_reservations(client, orders),
        *_shipments(client, orders),
        *_money(client, orders),
        *_applied_once(client),
    ]
    assert not problems, f"{len(problems)} ledger problems:\n" + "\n".join(problems[:60])


async def wait_quiet(client: PipelineClient, timeout_s: float) -> None:
    """Until every order is settled, every outbox empty and every group has read everything,
    with no new message in any topic since the previous look (so no consumer was still
    producing while we looked)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    previous_ends: dict[str, int] | None = None
    while True:
        unsettled = [o for o in load_orders(client).values() if not o.settled]
        backlog = {s: n for s in SERVICES if (n := _outbox_rows(client, s))}
        lagging, ends = await consumer_positions(client.pipeline.bootstrap)
        if not unsettled and not backlog and not lagging and ends == previous_ends:
            return
        if loop.time() > deadline:
            described = [f"{o.order_id} {o.status} awaiting {o.awaiting}" for o in unsettled]
            raise AssertionError(
                f"the pipeline did not go quiet in {timeout_s:.0f}s:"
                f" {len(unsettled)} orders unsettled {described[:20]},"
                f" outbox rows {backlog}, lagging {lagging[:10]}"
            )
        previous_ends = ends
        await asyncio.sleep(0.3)  # a poll interval, like wait_until's


def _outbox_rows(client: PipelineClient, service: str) -> int:
    count: int = client.query(service, "SELECT COUNT(*) FROM outbox")[0][0]
    return count


def _json(value: Any) -> Any:
    """JSON columns come back parsed from PostgreSQL and as text from SQLite."""
    return json.loads(value) if isinstance(value, str) else value


def _units(lines: Any) -> Counter[str]:
    units = Counter[str]()
    for line in _json(lines) or []:
        units[line["sku"]] += int(line["quantity"])
    return units


def load_orders(client: PipelineClient) -> dict[str, Order]:
    """Every order with its lines and returns, from the orders database."""
    orders = {
        order_id: Order(
            order_id,
            status,
            cancel_reason,
            list(_json(awaiting) or []),
            shipping,
            total,
            refunded or 0,
        )
        for order_id, status, cancel_reason, awaiting, shipping, total, refunded in client.query(
            "orders",
            "SELECT order_id, status, cancel_reason, awaiting, shipping, total, refunded"
            " FROM orders",
        )
    }
    for order_id, sku, quantity, unit_price in client.query(
        "orders", "SELECT order_id, sku, quantity, unit_price FROM order_lines"
    ):
        orders[order_id].quantities[sku] += quantity
        orders[order_id].unit_prices.setdefault(sku, unit_price)
    for return_id, order_id, status, received, refund_amount, requested_at in client.query(
        "orders",
        "SELECT return_id, order_id, status, received_lines, refund_amount, requested_at"
        " FROM order_returns",
    ):
        orders[order_id].returns.append(
            Return(return_id, status, _units(received), refund_amount, requested_at)
        )
    return orders


def _settlement(orders: Mapping[str, Order]) -> list[str]:
    problems = []
    for order in orders.values():
        if not order.settled:
            problems.append(f"order {order.order_id}: {order.status} awaiting {order.awaiting}")
        if order.status == "CANCELLED" and order.cancel_reason not in CANCEL_REASONS:
            problems.append(f"order {order.order_id}: cancelled for {order.cancel_reason!r}")
        for unfinished in (r for r in order.returns if r.status != "refunded"):
            problems.append(
                f"order {order.order_id}: return {unfinished.return_id} is {unfinished.status}"
            )
    return problems


def _stock(
    client: PipelineClient, orders: Mapping[str, Order], initial: Mapping[str, int]
) -> list[str]:
    shipped = Counter[str]()
    restocked = Counter[str]()
    for order in orders.values():
        if order.delivered:
            shipped.update(order.quantities)
            restocked.update(order.restocked())
    problems = []
    levels = client.query("inventory", "SELECT sku, warehouse, on_hand, reserved FROM stock_levels")
    on_hand = Counter[str]()
    for sku, warehouse, units, reserved in levels:
        on_hand[sku] += units
        if reserved != 0:
            problems.append(f"SKU {sku} at {warehouse}: {reserved} units left reserved")
    for sku in sorted(set(initial) | set(on_hand)):
        expected = initial.get(sku, 0) - shipped[sku] + restocked[sku]
        if on_hand[sku] != expected:
            problems.append(
                f"SKU {sku}: {on_hand[sku]} on hand, expected {expected}"
                f" = {initial.get(sku, 0)} initial - {shipped[sku]} shipped"
                f" + {restocked[sku]} restocked"
            )
    return problems


def _reservations(client: PipelineClient, orders: Mapping[str, Order]) -> list[str]:
    """Per order, inventory's side of the story matches what the order went through."""
    by_status: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for order_id, sku, quantity, status in client.query(
        "inventory", "SELECT order_id, sku, quantity, status FROM reservations"
    ):
        by_status[order_id][status][sku] += quantity
    restocks: dict[str, Counter[str]] = defaultdict(Counter)
    for order_id, lines in client.query("inventory", "SELECT order_id, lines FROM restocks"):
        restocks[order_id].update(_units(lines))
    problems = []
    for order_id in sorted((set(by_status) | set(restocks)) - set(orders)):
        problems.append(f"order {order_id}: inventory holds rows for an order nobody placed")
    for order in orders.values():
        statuses = by_status.get(order.order_id, {})
        shipped = statuses.get("shipped", Counter())
        expected_shipped = order.quantities if order.delivered else Counter()
        if +shipped != +expected_shipped:
            problems.append(
                f"order {order.order_id} ({order.status}): inventory shipped {dict(shipped)},"
                f" expected {dict(expected_shipped)}"
            )
        if reserved := statuses.get("reserved"):
            problems.append(f"order {order.order_id}: still reserved in inventory {dict(reserved)}")
        restocked = restocks.get(order.order_id, Counter())
        if +restocked != +order.restocked():
            problems.append(
                f"order {order.order_id}: inventory restocked {dict(restocked)},"
                f" its completed returns received {dict(order.restocked())}"
            )
    return problems


def _shipments(client: PipelineClient, orders: Mapping[str, Order]) -> list[str]:
    """Goods reached the customers of delivered orders, and only theirs."""
    statuses: dict[str, list[str]] = defaultdict(list)
    for order_id, status in client.query("fulfillment", "SELECT order_id, status FROM shipments"):
        statuses[order_id].append(status)
    problems = [
        f"order {order_id}: fulfillment shipped {statuses[order_id]} for an order nobody placed"
        for order_id in sorted(set(statuses) - set(orders))
    ]
    for order in orders.values():
        expected = ["delivered"] if order.delivered else []
        actual = [s for s in statuses.get(order.order_id, []) if s != "cancelled"]
        if actual != expected:
            problems.append(
                f"order {order.order_id} ({order.status}): shipments {actual}, expected {expected}"
            )
    return problems


def _money(client: PipelineClient, orders: Mapping[str, Order]) -> list[str]:
    captured = Counter[str]()
    payment_problems = []
    refunded_per_payment = Counter[str]()
    refunded = Counter[str]()
    for refund_id, order_id, payment_id, amount in client.query(
        "payments", "SELECT refund_id, order_id, payment_id, amount FROM refunds"
    ):
        refunded[order_id] += amount
        refunded_per_payment[payment_id] += amount
        if amount < 0:
            payment_problems.append(f"order {order_id}: refund {refund_id} of {amount}")
    for payment_id, order_id, amount, status, refunded_amount in client.query(
        "payments", "SELECT payment_id, order_id, amount, status, refunded_amount FROM payments"
    ):
        if status == "captured":
            captured[order_id] += amount
        if refunded_amount > (amount if status == "captured" else 0):
            payment_problems.append(
                f"order {order_id}: payment {payment_id} ({status}) of {amount}"
                f" refunded {refunded_amount}"
            )
        if refunded_amount != refunded_per_payment[payment_id]:
            payment_problems.append(
                f"order {order_id}: payment {payment_id} says {refunded_amount} refunded,"
                f" its refunds add up to {refunded_per_payment[payment_id]}"
            )
    problems = [
        f"order {order_id}: payments holds money for an order nobody placed"
        for order_id in sorted((set(captured) | set(refunded)) - set(orders))
    ]
    problems += payment_problems
    expected_total = actual_total = 0
    for order in orders.values():
        net = captured[order.order_id] - refunded[order.order_id]
        expected = order.expected_net()
        expected_total += expected
        actual_total += net
        if net != expected:
            problems.append(
                f"order {order.order_id} ({order.status}, total {order.total}):"
                f" captured {captured[order.order_id]} - refunded {refunded[order.order_id]}"
                f" = {net}, expected {expected}"
            )
        if order.refunded != refunded[order.order_id]:
            problems.append(
                f"order {order.order_id}: the order shows {order.refunded} refunded,"
                f" payments refunded {refunded[order.order_id]}"
            )
        for completed, amount in order.expected_refunds():
            if completed.refund_amount != amount:
                problems.append(
                    f"order {order.order_id}: return {completed.return_id} refunded"
                    f" {completed.refund_amount}, the refund rule gives {amount}"
                )
    if actual_total != expected_total:
        problems.append(
            f"all orders: captured - refunded = {actual_total}, expected {expected_total}"
        )
    return problems


def _applied_once(client: PipelineClient) -> list[str]:
    checks = {
        "an event recorded twice in the timeline of order": (
            "orders",
            "SELECT MIN(order_id), event_id, COUNT(*) FROM order_timeline"
            " GROUP BY event_id HAVING COUNT(*) > 1",
        ),
        "more than one capture for order": (
            "payments",
            "SELECT order_id, status, COUNT(*) FROM payments WHERE status = 'captured'"
            " GROUP BY order_id, status HAVING COUNT(*) > 1",
        ),
        "one refund id applied twice for order": (
            "payments",
            "SELECT order_id, refund_id, COUNT(*) FROM refunds"
            " GROUP BY order_id, refund_id HAVING COUNT(*) > 1",
        ),
        "a notification sent twice for order": (
            "notifications",
            "SELECT order_id, template, COUNT(*) FROM notification_log"
            " GROUP BY order_id, template, reference HAVING COUNT(*) > 1",
        ),
    }
    problems = []
    for what, (service, sql) in checks.items():
        for order_id, detail, count in client.query(service, sql):
            problems.append(f"{what} {order_id}: {detail} x{count}")
    return problems
