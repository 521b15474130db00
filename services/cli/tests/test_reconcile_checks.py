"""Each reconcile check on small hand-made books: consistent books pass, and every kind of
damage fails the right check naming the order or SKU at fault, while in-flight orders are
left alone."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from orders.domain.returns import refund_id_for_cancellation, refund_id_for_return
from pipeline_cli.reconcile_checks import (
    CHECKS,
    Books,
    CheckResult,
    Judging,
    Order,
    Payment,
    Refund,
    Repeat,
    Reservation,
    Restock,
    Return,
    Shipment,
    StockLevel,
    UnsentNotification,
    run_checks,
    short_duration,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
AN_HOUR_AGO = NOW - timedelta(hours=1)
JUST_NOW = NOW - timedelta(seconds=5)
JUDGING = Judging(NOW, settle=timedelta(seconds=60), older_than=timedelta(minutes=15))
PRICE, SHIPPING = 1000, 499
TOTAL = 2 * PRICE + SHIPPING  # every order here: 2 mugs, shipped from WH-A


class Shop:
    """Books of a few orders, each as the five services record it when all went right."""

    def __init__(self) -> None:
        self.books = Books(read_at=NOW)
        self.on_hand = 100

    def order(self, order_id: str, status: str, **fields: object) -> Order:
        order = Order(
            order_id,
            status,
            None,
            [],
            shipping=SHIPPING,
            total=TOTAL,
            refunded=0,
            quantities=Counter({"MUG": 2}),
            unit_prices={"MUG": PRICE},
            status_since=AN_HOUR_AGO,
        )
        for name, value in fields.items():
            setattr(order, name, value)
        self.books.orders[order_id] = order
        return order

    def completed(self, order_id: str = "o-completed") -> Order:
        order = self.order(order_id, "COMPLETED", dispatched_at=AN_HOUR_AGO)
        self.reserve(order_id, "shipped")
        self.capture(order_id)
        self.books.shipments.append(Shipment(f"s-{order_id}", order_id, "delivered"))
        return order

    def cancelled_after_capture(self, order_id: str = "o-cancelled") -> Order:
        order = self.order(order_id, "CANCELLED", cancel_reason="customer_cancelled")
        order.refunded = TOTAL
        self.reserve(order_id, "released")
        self.capture(order_id, refunded=TOTAL)
        self.refund(refund_id_for_cancellation(order_id), order_id, TOTAL)
        self.books.shipments.append(Shipment(f"s-{order_id}", order_id, "cancelled"))
        return order

    def declined(self, order_id: str = "o-declined") -> Order:
        order = self.order(order_id, "CANCELLED", cancel_reason="declined")
        self.reserve(order_id, "released")
        self.books.payments.append(Payment(f"p-{order_id}", order_id, TOTAL, "failed", 0))
        return order

    def returned(self, order_id: str = "o-returned") -> Order:
        order = self.completed(order_id)
        order.status, order.refunded = "RETURNED", TOTAL
        refund_id = refund_id_for_return(f"r-{order_id}")
        order.returns.append(
            Return(f"r-{order_id}", "refunded", Counter({"MUG": 2}), TOTAL, 1, refund_id)
        )
        self.books.restocks.append(Restock(f"r-{order_id}", order_id, Counter({"MUG": 2})))
        [payment] = [p for p in self.books.payments if p.order_id == order_id]
        self.books.payments.remove(payment)
        self.capture(order_id, refunded=TOTAL)
        self.refund(refund_id, order_id, TOTAL)
        return order

    def paid_just_now(self, order_id: str = "o-in-flight") -> Order:
        order = self.order(order_id, "PAID", status_since=JUST_NOW)
        self.reserve(order_id, "reserved")
        self.capture(order_id)
        return order

    def reserve(self, order_id: str, status: str, quantity: int = 2) -> None:
        self.books.reservations.append(Reservation(order_id, "MUG", "WH-A", quantity, status))

    def capture(self, order_id: str, refunded: int = 0) -> None:
        self.books.payments.append(Payment(f"p-{order_id}", order_id, TOTAL, "captured", refunded))

    def refund(self, refund_id: str, order_id: str, amount: int) -> None:
        self.books.refunds.append(Refund(refund_id, order_id, f"p-{order_id}", amount))

    def checked(self, judging: Judging = JUDGING) -> dict[str, CheckResult]:
        """Every check's result, inventory's counter matching its open reservations."""
        held = sum(r.quantity for r in self.books.reservations if r.status == "reserved")
        self.books.stock_levels = [StockLevel("MUG", "WH-A", self.on_hand, held)]
        return {result.name: result for result in run_checks(self.books, judging)}


def every_outcome() -> Shop:
    shop = Shop()
    shop.completed()
    shop.cancelled_after_capture()
    shop.declined()
    shop.returned()
    shop.paid_just_now()
    return shop


def failures(results: dict[str, CheckResult]) -> dict[str, list[str]]:
    return {
        name: [str(finding) for finding in result.findings]
        for name, result in results.items()
        if not result.ok
    }


def test_consistent_books_pass_every_check_and_say_what_they_looked_at() -> None:
    results = every_outcome().checked()
    assert failures(results) == {}
    assert list(results) == list(CHECKS)
    assert results["stock"].checked == {"stock levels": 1, "orders judged": 4}
    assert results["money"].verdict.startswith("captured - refunded per settled order")
    assert results["money"].verdict.endswith("(5 payments, 4 settled orders judged)")


def test_an_order_unsettled_for_longer_than_the_age_is_stuck_with_its_status_and_awaiting() -> None:
    shop = every_outcome()
    shop.order("o-paid", "PAID", status_since=NOW - timedelta(minutes=20))
    shop.order(
        "o-compensating",
        "COMPENSATING",
        awaiting=["StockReleased", "PaymentRefunded"],
        status_since=NOW - timedelta(hours=2, minutes=5),
    )
    shop.order("o-recent", "PAID", status_since=NOW - timedelta(minutes=14))
    shop.order("o-cancelled-awaiting", "CANCELLED", awaiting=["PaymentRefunded"])
    assert failures(shop.checked())["stuck"] == [
        "order o-cancelled-awaiting: CANCELLED for 1h, awaiting PaymentRefunded",
        "order o-compensating: COMPENSATING for 2h5m, awaiting PaymentRefunded, StockReleased",
        "order o-paid: PAID for 20m, awaiting nothing",
    ]


def test_a_return_waiting_for_the_parcel_is_not_stuck_one_waiting_for_its_label_is() -> None:
    shop = every_outcome()
    shop.order("o-label-out", "RETURN_REQUESTED", status_since=NOW - timedelta(days=3))
    shop.order(
        "o-no-label",
        "RETURN_REQUESTED",
        awaiting=["ReturnLabelIssued"],
        status_since=NOW - timedelta(minutes=30),
    )
    assert failures(shop.checked())["stuck"] == [
        "order o-no-label: RETURN_REQUESTED for 30m, awaiting ReturnLabelIssued"
    ]


def test_a_terminal_order_with_an_unfinished_return_is_stuck() -> None:
    shop = every_outcome()
    shop.books.orders["o-returned"].returns[0].status = "received"
    assert failures(shop.checked())["stuck"] == [
        "order o-returned: RETURNED for 1h, awaiting nothing",
        "order o-returned: return r-o-returned is received",
    ]


def test_reserved_units_that_no_reservation_holds_are_off_for_the_sku() -> None:
    shop = every_outcome()
    shop.books.reservations.append(Reservation("o-in-flight", "MUG", "WH-B", 1, "reserved"))
    assert failures(shop.checked())["stock"] == [
        "SKU MUG: at WH-A: 3 units reserved, its open reservations hold 2",
        "SKU MUG: at WH-B: 0 units reserved, its open reservations hold 1",
    ]


def test_negative_or_oversold_stock_is_off() -> None:
    shop = every_outcome()
    shop.on_hand = -1
    assert "SKU MUG: at WH-A: -1 on hand, 2 reserved" in failures(shop.checked())["stock"]
    shop.on_hand = 1
    assert failures(shop.checked())["stock"] == ["SKU MUG: at WH-A: 2 reserved of 1 on hand"]


@pytest.mark.parametrize(
    ("status", "dispatched"),
    [("CANCELLED", False), ("COMPLETED", True), ("FULFILLING", True), ("RETURNED", True)],
)
def test_stock_still_reserved_for_an_order_past_holding_it_is_off(
    status: str, dispatched: bool
) -> None:
    shop = every_outcome()
    shop.order("o-x", status, dispatched_at=AN_HOUR_AGO if dispatched else None)
    shop.reserve("o-x", "reserved")
    findings = [f for f in failures(shop.checked())["stock"] if "still reserved" in f]
    where = f"{status}, dispatched" if status == "FULFILLING" else status
    assert findings == [f"order o-x: {where}: still reserved in inventory {{'MUG': 2}}"]


@pytest.mark.parametrize("status", ["PENDING", "RESERVED", "PAID", "FULFILLING", "COMPENSATING"])
def test_open_orders_may_hold_stock_for_any_time(status: str) -> None:
    shop = every_outcome()
    shop.order("o-open", status)
    shop.reserve("o-open", "reserved")
    assert "stock" not in failures(shop.checked())


def test_a_dispatch_inside_the_settle_margin_is_not_judged_yet() -> None:
    shop = every_outcome()
    shop.order("o-leaving", "FULFILLING", dispatched_at=JUST_NOW)
    shop.reserve("o-leaving", "reserved")
    assert "stock" not in failures(shop.checked())


def test_delivered_goods_inventory_did_not_ship_and_restocks_of_no_return_are_off() -> None:
    shop = every_outcome()
    shop.books.reservations = [r for r in shop.books.reservations if r.order_id != "o-completed"]
    shop.books.restocks.append(Restock("r-x", "o-completed", Counter({"MUG": 1})))
    assert failures(shop.checked())["stock"] == [
        "order o-completed: COMPLETED: inventory shipped {}, expected {'MUG': 2}",
        "order o-completed: inventory restocked {'MUG': 1}, its completed returns received {}",
    ]


def test_inventory_rows_for_an_order_nobody_placed_are_off() -> None:
    shop = every_outcome()
    shop.reserve("o-ghost", "released")
    assert failures(shop.checked())["stock"] == [
        "order o-ghost: inventory holds rows for an order nobody placed"
    ]


def test_a_completed_order_without_its_capture_is_off() -> None:
    shop = every_outcome()
    shop.books.payments = [p for p in shop.books.payments if p.order_id != "o-completed"]
    assert failures(shop.checked())["money"] == [
        "order o-completed: COMPLETED, total 2499: captured 0 - refunded 0 = 0, expected 2499",
        "order o-completed: COMPLETED: no captured payment of its total 2499",
    ]


def test_a_cancelled_order_whose_capture_was_not_refunded_is_off() -> None:
    shop = every_outcome()
    shop.order("o-kept", "CANCELLED", cancel_reason="customer_cancelled")
    shop.capture("o-kept")
    assert failures(shop.checked())["money"] == [
        "order o-kept: CANCELLED, total 2499: captured 2499 - refunded 0 = 2499, expected 0"
    ]


def test_refunds_the_order_and_the_payment_do_not_know_of_are_off() -> None:
    shop = every_outcome()
    shop.books.orders["o-cancelled"].refunded = 0
    shop.books.payments.append(Payment("p-ghost", "o-ghost", 100, "captured", 0))
    problems = failures(shop.checked())["money"]
    assert problems == [
        "order o-cancelled: the order shows 0 refunded, payments refunded 2499",
        "order o-ghost: payments captured money for an order nobody placed",
    ]


def test_a_payment_whose_refunds_do_not_add_up_is_off() -> None:
    shop = every_outcome()
    shop.refund("extra", "o-declined", 10)
    problems = failures(shop.checked())["money"]
    assert "order o-declined: payment p-o-declined says 0 refunded, its refunds add up to 10" in (
        problems
    )
    assert (
        "order o-declined: CANCELLED, total 2499: captured 0 - refunded 10 = -10, expected 0"
        in (problems)
    )


def test_two_captures_for_one_order_are_off() -> None:
    shop = every_outcome()
    shop.books.payments.append(Payment("p-twice", "o-completed", TOTAL, "captured", TOTAL))
    shop.refund("r-twice", "o-completed", TOTAL)
    assert "order o-completed: captured 2 times" in failures(shop.checked())["money"]


def test_a_refund_of_no_cancellation_or_return_is_off() -> None:
    shop = every_outcome()
    shop.refund("goodwill", "o-completed", 0)
    shop.refund(refund_id_for_cancellation("o-returned"), "o-returned", 0)
    assert failures(shop.checked())["refunds"] == [
        "order o-completed: refund goodwill of 0 belongs to no cancellation or return of the order",
        f"order o-returned: RETURNED: refund {refund_id_for_cancellation('o-returned')} of 0"
        " for a cancellation",
    ]


def test_a_return_refunded_otherwise_than_payments_or_the_rule_say_is_off() -> None:
    shop = every_outcome()
    order = shop.books.orders["o-returned"]
    order.returns[0].refund_amount = TOTAL - 1
    order.refunded = TOTAL - 1
    problems = failures(shop.checked())
    assert problems["refunds"] == [
        "order o-returned: return r-o-returned refunded 2498, payments refunded 2499",
        "order o-returned: return r-o-returned refunded 2498, the refund rule gives 2499",
    ]
    assert problems["money"] == [
        "order o-returned: the order shows 2498 refunded, payments refunded 2499"
    ]


def test_a_returned_order_without_its_refund_in_payments_is_off() -> None:
    shop = every_outcome()
    shop.books.refunds = [r for r in shop.books.refunds if r.order_id != "o-returned"]
    refund_id = refund_id_for_return("r-o-returned")
    assert (
        f"order o-returned: return r-o-returned refunded 2499, payments has no refund {refund_id}"
        in failures(shop.checked())["refunds"]
    )


def test_shipments_missing_for_delivered_orders_or_made_for_cancelled_ones_are_off() -> None:
    shop = every_outcome()
    shop.books.shipments = [
        s for s in shop.books.shipments if s.order_id not in ("o-completed", "o-cancelled")
    ]
    shop.books.shipments.append(Shipment("s-late", "o-cancelled", "dispatched"))
    shop.books.shipments.append(Shipment("s-ghost", "o-ghost", "delivered"))
    assert failures(shop.checked())["shipments"] == [
        "order o-cancelled: CANCELLED: shipments ['dispatched'], expected []",
        "order o-completed: COMPLETED: shipments [], expected ['delivered']",
        "order o-ghost: fulfillment shipped for an order nobody placed",
    ]


def test_a_notification_still_waiting_for_its_contact_is_off_once_the_order_is_judged() -> None:
    shop = every_outcome()
    shop.books.unsent_notifications += [
        UnsentNotification("o-completed", "order_shipped", ""),
        UnsentNotification("o-in-flight", "payment_received", ""),
    ]
    assert failures(shop.checked())["notifications"] == [
        "order o-completed: notification order_shipped never sent:"
        " it still waits for the customer's contact"
    ]


def test_an_event_or_a_notification_recorded_twice_is_off() -> None:
    shop = every_outcome()
    shop.books.timeline_repeats.append(Repeat("o-completed", "event e-1", 2))
    shop.books.notification_repeats.append(Repeat("o-returned", "notification refund (r-1)", 3))
    assert failures(shop.checked())["applied-once"] == [
        "event e-1: recorded twice in the timeline of order o-completed",
        "order o-returned: notification refund (r-1) sent 3 times",
    ]


def test_in_flight_orders_are_not_judged_however_their_books_look() -> None:
    shop = every_outcome()
    shop.books.payments = [p for p in shop.books.payments if p.order_id != "o-in-flight"]
    shop.books.orders["o-in-flight"].status = "COMPLETED"
    shop.books.orders["o-in-flight"].dispatched_at = JUST_NOW
    assert failures(shop.checked()) == {}
    everything = Judging(NOW, settle=timedelta(0), older_than=timedelta(0))
    assert set(failures(shop.checked(everything))) == {"stock", "money", "shipments"}


def test_a_verdict_counts_the_problems_and_what_is_at_fault() -> None:
    shop = every_outcome()
    shop.books.shipments.clear()
    shop.on_hand = 0
    results = shop.checked()
    assert results["shipments"].verdict == (
        "2 problems with 2 orders (of 0 shipments, 4 orders judged);"
        " expected: one delivered shipment per delivered order, none for cancelled ones"
    )
    assert results["stock"].verdict.startswith("1 problem with 1 SKU (of 1 stock levels,")


@pytest.mark.parametrize(
    ("span", "shown"),
    [
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=1, minutes=30, seconds=5), "1h30m"),
        (timedelta(days=2, hours=3, minutes=1), "2d3h"),
    ],
)
def test_durations_read_at_a_glance(span: timedelta, shown: str) -> None:
    assert short_duration(span) == shown
