"""Do the five services' books agree with each other and with the orders' outcomes?

Pure: `Books` is what was read from the databases, `Judging` says which orders are old
enough to judge, and each check returns a `CheckResult` naming every order or SKU at fault.
`pipeline reconcile` runs them on a live pipeline; the integration suite's ledger runs them
on a quiet one, judging every order.

Orders are judged only once their last change is older than a settle margin: the services
move one after the other (each reads the others' events), so a snapshot of five databases
catches a fresh order half-way. An order still not settled after `older_than` is stuck.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orders.domain.returns import refund_id_for_cancellation
from orders.domain.saga import TERMINAL, OrderStatus

S = OrderStatus
# The goods reached the customer: what these orders hold has left the warehouse.
DELIVERED = frozenset({S.COMPLETED, S.RETURN_REQUESTED, S.RETURNING, S.RETURNED})
# Inventory may rightly hold stock for these: the order is on its way forward (FULFILLING
# only until dispatch), or a compensation is still releasing it.
MAY_HOLD_STOCK = frozenset({S.PENDING, S.RESERVED, S.PAID, S.FULFILLING, S.COMPENSATING})
# A cancellation refunds under the order's own refund id (and only a cancellation does).
MAY_HAVE_CANCELLATION_REFUND = frozenset({S.COMPENSATING, S.CANCELLED})
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Return:
    """One return of an order, as the orders service records it."""

    return_id: str
    status: str  # requested | label_issued | received | refunded
    received: Counter[str]
    refund_amount: int | None
    requested_at: Any  # anything orderable: returns are refunded in the order they came
    refund_id: str = ""


@dataclass
class Order:
    """An order as the orders service sees it: its outcome, lines and returns."""

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
    status_since: datetime = LONG_AGO
    dispatched_at: datetime | None = None

    @property
    def settled(self) -> bool:
        """Nothing more will happen to it unless the customer acts again."""
        return (
            self.status in TERMINAL
            and not self.awaiting
            and all(r.status == "refunded" for r in self.returns)
        )

    @property
    def delivered(self) -> bool:
        return self.status in DELIVERED

    @property
    def last_change(self) -> datetime:
        """Dispatch changes no status, yet inventory and fulfillment move on it."""
        return max(self.status_since, self.dispatched_at or LONG_AGO)

    @property
    def waits_for_the_parcel(self) -> bool:
        """Its return label is out: the customer sends the goods back when they like, within
        the return window, so no age makes this order stuck."""
        return self.status == S.RETURN_REQUESTED and not self.awaiting

    @property
    def may_hold_stock(self) -> bool:
        if self.status == S.FULFILLING:
            return self.dispatched_at is None
        return self.status in MAY_HOLD_STOCK

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
        """The refund rule, written out again as an independent oracle: the received units
        at their price, plus the shipping fee with the return that brings every unit back."""
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
        if self.status == S.CANCELLED:
            return 0
        return self.total - sum(amount for _, amount in self.expected_refunds())


@dataclass(frozen=True)
class StockLevel:
    sku: str
    warehouse: str
    on_hand: int
    reserved: int


@dataclass(frozen=True)
class Reservation:
    order_id: str
    sku: str
    warehouse: str
    quantity: int
    status: str  # reserved | released | shipped


@dataclass(frozen=True)
class Restock:
    return_id: str
    order_id: str
    units: Counter[str]


@dataclass(frozen=True)
class Payment:
    payment_id: str
    order_id: str
    amount: int
    status: str  # captured | failed
    refunded_amount: int


@dataclass(frozen=True)
class Refund:
    refund_id: str
    order_id: str
    payment_id: str
    amount: int


@dataclass(frozen=True)
class Shipment:
    shipment_id: str
    order_id: str
    status: str  # created | dispatched | delivered | cancelled


@dataclass(frozen=True)
class UnsentNotification:
    """A notification still waiting for the customer's contact (from OrderPlaced)."""

    order_id: str
    template: str
    reference: str


@dataclass(frozen=True)
class Repeat:
    """Something a service recorded more than once, with how often."""

    order_id: str
    what: str  # e.g. "event 3f2e…" or "notification order_confirmed"
    count: int


@dataclass
class Books:
    """Everything the checks look at, read from the five databases from `read_at` on."""

    read_at: datetime
    orders: dict[str, Order] = field(default_factory=dict)
    stock_levels: list[StockLevel] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    restocks: list[Restock] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    unsent_notifications: list[UnsentNotification] = field(default_factory=list)
    timeline_repeats: list[Repeat] = field(default_factory=list)
    notification_repeats: list[Repeat] = field(default_factory=list)


@dataclass(frozen=True)
class Judging:
    now: datetime
    settle: timedelta  # an order is judged once its last change is this old
    older_than: timedelta  # an order unsettled in its status for this long is stuck

    def judged(self, order: Order) -> bool:
        return order.last_change <= self.now - self.settle

    def stuck(self, order: Order) -> bool:
        return (
            not order.settled
            and not order.waits_for_the_parcel
            and order.status_since <= self.now - self.older_than
        )


@dataclass(frozen=True, order=True)
class Finding:
    subject: str  # what is at fault, as an operator would search for it: "order <id>"
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


@dataclass(frozen=True)
class CheckResult:
    name: str
    claim: str  # what holds when the check passes
    checked: Mapping[str, int]  # how many of what it looked at
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def verdict(self) -> str:
        looked_at = ", ".join(f"{count} {what}" for what, count in self.checked.items())
        if self.ok:
            return f"{self.claim} ({looked_at})"
        problems = len(self.findings)
        kinds = Counter(subject.split()[0] for subject in {f.subject for f in self.findings})
        at_fault = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in kinds.items())
        return (
            f"{problems} problem{'s' if problems != 1 else ''} with {at_fault}"
            f" (of {looked_at}); expected: {self.claim}"
        )


Check = Callable[[Books, Judging], CheckResult]


def run_checks(books: Books, judging: Judging) -> list[CheckResult]:
    return [check(books, judging) for check in CHECKS.values()]


def about_order(order_id: str, detail: str) -> Finding:
    return Finding(f"order {order_id}", detail)


def short_duration(span: timedelta) -> str:
    """15m, 1h30m, 2d3h, 45s: how long, at a glance."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2])


def check_stuck(books: Books, judging: Judging) -> CheckResult:
    findings = []
    for order in books.orders.values():
        if not judging.stuck(order):
            continue
        since = short_duration(judging.now - order.status_since)
        awaiting = ", ".join(sorted(order.awaiting)) or "nothing"
        findings.append(
            about_order(order.order_id, f"{order.status} for {since}, awaiting {awaiting}")
        )
        for unfinished in (r for r in order.returns if r.status != "refunded"):
            findings.append(
                about_order(order.order_id, f"return {unfinished.return_id} is {unfinished.status}")
            )
    return _result(
        "stuck",
        f"no order unsettled in its status for {short_duration(judging.older_than)} or more"
        " (returns waiting for the parcel excepted)",
        {"orders": len(books.orders)},
        findings,
    )


def check_stock(books: Books, judging: Judging) -> CheckResult:
    """Inventory's counters agree with its reservations, and its reservations, shipments and
    restocks with what the orders went through."""
    findings = [*_stock_levels(books)]
    by_status: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for reservation in books.reservations:
        by_status[reservation.order_id][reservation.status][reservation.sku] += reservation.quantity
    restocked: dict[str, Counter[str]] = defaultdict(Counter)
    for restock in books.restocks:
        restocked[restock.order_id].update(restock.units)
    findings += _unknown_orders(
        books, set(by_status) | set(restocked), "inventory holds rows for an order nobody placed"
    )
    judged = _judged(books, judging)
    for order in judged:
        statuses = by_status.get(order.order_id, {})
        held = statuses.get("reserved")
        if held and not order.may_hold_stock:
            dispatched = ", dispatched" if order.status == S.FULFILLING else ""
            findings.append(
                about_order(
                    order.order_id,
                    f"{order.status}{dispatched}: still reserved in inventory {dict(held)}",
                )
            )
        expected_shipped = _expected_shipped(order)
        shipped = statuses.get("shipped", Counter())
        if expected_shipped is not None and +shipped != +expected_shipped:
            findings.append(
                about_order(
                    order.order_id,
                    f"{order.status}: inventory shipped {dict(shipped)},"
                    f" expected {dict(expected_shipped)}",
                )
            )
        back = restocked.get(order.order_id, Counter())
        if order.settled and +back != +order.restocked():
            findings.append(
                about_order(
                    order.order_id,
                    f"inventory restocked {dict(back)},"
                    f" its completed returns received {dict(order.restocked())}",
                )
            )
    levels = len({(level.sku, level.warehouse) for level in books.stock_levels})
    return _result(
        "stock",
        "reserved = open reservations, none for finished orders;"
        " shipped and restocked as the orders say; no negative stock",
        {"stock levels": levels, "orders judged": len(judged)},
        findings,
    )


def check_money(books: Books, judging: Judging) -> CheckResult:
    """Per settled order, what payments captured and refunded matches the order's books."""
    captured = Counter[str]()
    captures = Counter[str]()
    refunded = Counter[str]()
    refunded_per_payment = Counter[str]()
    findings = []
    for refund in books.refunds:
        refunded[refund.order_id] += refund.amount
        refunded_per_payment[refund.payment_id] += refund.amount
        if refund.amount < 0:
            findings.append(
                about_order(refund.order_id, f"refund {refund.refund_id} of {refund.amount}")
            )
    for payment in books.payments:
        if payment.status == "captured":
            captured[payment.order_id] += payment.amount
            captures[payment.order_id] += 1
        if payment.refunded_amount > (payment.amount if payment.status == "captured" else 0):
            findings.append(
                about_order(
                    payment.order_id,
                    f"payment {payment.payment_id} ({payment.status}) of {payment.amount}"
                    f" refunded {payment.refunded_amount}",
                )
            )
        if payment.refunded_amount != refunded_per_payment[payment.payment_id]:
            findings.append(
                about_order(
                    payment.order_id,
                    f"payment {payment.payment_id} says {payment.refunded_amount} refunded,"
                    f" its refunds add up to {refunded_per_payment[payment.payment_id]}",
                )
            )
    findings += [
        about_order(order_id, f"captured {count} times")
        for order_id, count in captures.items()
        if count > 1
    ]
    findings += _unknown_orders(
        books, set(captures), "payments captured money for an order nobody placed"
    )
    settled = [o for o in _judged(books, judging) if o.settled]
    for order in settled:
        paid, back = captured[order.order_id], refunded[order.order_id]
        if order.delivered and paid != order.total:
            findings.append(
                about_order(
                    order.order_id,
                    f"{order.status}: captured {paid} of its total {order.total}"
                    if paid
                    else f"{order.status}: no captured payment of its total {order.total}",
                )
            )
        if paid - back != order.expected_net():
            findings.append(
                about_order(
                    order.order_id,
                    f"{order.status}, total {order.total}: captured {paid} - refunded {back}"
                    f" = {paid - back}, expected {order.expected_net()}",
                )
            )
        if order.refunded != back:
            findings.append(
                about_order(
                    order.order_id,
                    f"the order shows {order.refunded} refunded, payments refunded {back}",
                )
            )
    return _result(
        "money",
        "captured - refunded per settled order = its total less its refunds (0 if cancelled)",
        {"payments": len(books.payments), "settled orders judged": len(settled)},
        findings,
    )


def check_refunds(books: Books, judging: Judging) -> CheckResult:
    """Every refund belongs to a cancellation or a return, for exactly the return's amount."""
    findings = [
        Finding(f"refund {refund_id}", f"applied {count} times")
        for refund_id, count in Counter(r.refund_id for r in books.refunds).items()
        if count > 1
    ]
    refunds = {refund.refund_id: refund for refund in books.refunds}
    findings += _unknown_orders(
        books, {r.order_id for r in books.refunds}, "payments refunded an order nobody placed"
    )
    for refund in books.refunds:
        order = books.orders.get(refund.order_id)
        if order is None or not judging.judged(order):
            continue
        if refund.refund_id == refund_id_for_cancellation(order.order_id):
            if order.status not in MAY_HAVE_CANCELLATION_REFUND:
                findings.append(
                    about_order(
                        order.order_id,
                        f"{order.status}: refund {refund.refund_id} of {refund.amount}"
                        " for a cancellation",
                    )
                )
        elif refund.refund_id not in {r.refund_id for r in order.returns}:
            findings.append(
                about_order(
                    order.order_id,
                    f"refund {refund.refund_id} of {refund.amount} belongs to no cancellation"
                    " or return of the order",
                )
            )
    settled = [o for o in _judged(books, judging) if o.settled]
    for order in settled:
        for completed, amount in order.expected_refunds():
            if completed.refund_amount != amount:
                findings.append(
                    about_order(
                        order.order_id,
                        f"return {completed.return_id} refunded {completed.refund_amount},"
                        f" the refund rule gives {amount}",
                    )
                )
            paid = refunds.get(completed.refund_id)
            if paid is None:
                findings.append(
                    about_order(
                        order.order_id,
                        f"return {completed.return_id} refunded {completed.refund_amount},"
                        f" payments has no refund {completed.refund_id}",
                    )
                )
            elif paid.amount != completed.refund_amount:
                findings.append(
                    about_order(
                        order.order_id,
                        f"return {completed.return_id} refunded {completed.refund_amount},"
                        f" payments refunded {paid.amount}",
                    )
                )
    return _result(
        "refunds",
        "each refund is for a cancellation or a return, of the return's amount",
        {"refunds": len(books.refunds), "settled orders judged": len(settled)},
        findings,
    )


def check_shipments(books: Books, judging: Judging) -> CheckResult:
    """Goods reached the customers of delivered orders, and only theirs."""
    statuses: dict[str, list[str]] = defaultdict(list)
    for shipment in books.shipments:
        statuses[shipment.order_id].append(shipment.status)
    findings = _unknown_orders(
        books, set(statuses), "fulfillment shipped for an order nobody placed"
    )
    judged = _judged(books, judging)
    for order in judged:
        if order.delivered:
            expected = ["delivered"]
        elif order.status == S.CANCELLED:
            expected = []
        else:
            continue  # on its way: any shipment status may be right
        actual = sorted(s for s in statuses.get(order.order_id, []) if s != "cancelled")
        if actual != expected:
            findings.append(
                about_order(
                    order.order_id, f"{order.status}: shipments {actual}, expected {expected}"
                )
            )
    return _result(
        "shipments",
        "one delivered shipment per delivered order, none for cancelled ones",
        {"shipments": len(books.shipments), "orders judged": len(judged)},
        findings,
    )


def check_notifications(books: Books, judging: Judging) -> CheckResult:
    findings = _unknown_orders(
        books,
        {n.order_id for n in books.unsent_notifications},
        "notifications waits for an order nobody placed",
    )
    for unsent in books.unsent_notifications:
        order = books.orders.get(unsent.order_id)
        if order is not None and judging.judged(order):
            reference = f" ({unsent.reference})" if unsent.reference else ""
            findings.append(
                about_order(
                    order.order_id,
                    f"notification {unsent.template}{reference} never sent:"
                    " it still waits for the customer's contact",
                )
            )
    return _result(
        "notifications",
        "every notification of a judged order was sent",
        {"unsent": len(books.unsent_notifications)},
        findings,
    )


def check_applied_once(books: Books, judging: Judging) -> CheckResult:
    """The inbox and the business keys make redelivery harmless: nothing shows twice."""
    findings = [
        Finding(
            repeat.what,
            f"recorded {_times(repeat.count)} in the timeline of order {repeat.order_id}",
        )
        for repeat in books.timeline_repeats
    ]
    findings += [
        about_order(repeat.order_id, f"{repeat.what} sent {_times(repeat.count)}")
        for repeat in books.notification_repeats
    ]
    return _result(
        "applied-once",
        "no event twice in a timeline, no notification sent twice",
        {"orders": len(books.orders)},
        findings,
    )


CHECKS: dict[str, Check] = {
    "stuck": check_stuck,
    "stock": check_stock,
    "money": check_money,
    "refunds": check_refunds,
    "shipments": check_shipments,
    "notifications": check_notifications,
    "applied-once": check_applied_once,
}


def _result(
    name: str, claim: str, checked: Mapping[str, int], findings: Iterable[Finding]
) -> CheckResult:
    return CheckResult(name, claim, dict(checked), tuple(sorted(findings)))


def _judged(books: Books, judging: Judging) -> list[Order]:
    return [order for order in books.orders.values() if judging.judged(order)]


def _unknown_orders(books: Books, order_ids: Iterable[str], what: str) -> list[Finding]:
    # No settle margin needed: orders commits an order before any other service can hear
    # of it, and is read last, so an id it does not know was never placed.
    return [about_order(order_id, what) for order_id in sorted(set(order_ids) - set(books.orders))]


def _expected_shipped(order: Order) -> Counter[str] | None:
    """What inventory should have taken off the shelves for the order; None while that may
    still change."""
    if order.delivered:
        return order.quantities
    if order.status == S.CANCELLED:
        return Counter()
    return None


def _stock_levels(books: Books) -> list[Finding]:
    held = Counter[tuple[str, str]]()
    for reservation in books.reservations:
        if reservation.status == "reserved":
            held[(reservation.sku, reservation.warehouse)] += reservation.quantity
    levels = {(level.sku, level.warehouse): level for level in books.stock_levels}
    findings = []
    for sku, warehouse in sorted(set(levels) | set(held)):
        level = levels.get((sku, warehouse), StockLevel(sku, warehouse, 0, 0))
        where = f"SKU {sku}"
        if level.on_hand < 0 or level.reserved < 0:
            findings.append(
                Finding(
                    where, f"at {warehouse}: {level.on_hand} on hand, {level.reserved} reserved"
                )
            )
        elif level.reserved > level.on_hand:
            findings.append(
                Finding(
                    where,
                    f"at {warehouse}: {level.reserved} reserved of {level.on_hand} on hand",
                )
            )
        if level.reserved != held[(sku, warehouse)]:
            findings.append(
                Finding(
                    where,
                    f"at {warehouse}: {level.reserved} units reserved,"
                    f" its open reservations hold {held[(sku, warehouse)]}",
                )
            )
    return findings


def _times(count: int) -> str:
    return "twice" if count == 2 else f"{count} times"
