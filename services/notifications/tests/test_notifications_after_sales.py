"""Returns, refunds and cancellations notify the customer once each, on every database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from kit.envelope import Envelope
from notifications.handlers.notify import notification_id
from notifications.testing import (
    Notifications,
    order_cancelled,
    order_placed,
    payment_refunded,
    return_label_issued,
    return_received,
)


@pytest.fixture
def notifications(database_url: str) -> Iterator[Notifications]:
    service = Notifications(database_url)
    service.deliver(order_placed("o-1"))
    yield service
    service.close()


def sent_body(service: Notifications, template: str) -> str:
    (notification,) = service.log(template)
    assert notification.status == "sent"
    assert notification.body is not None
    return notification.body


AFTER_SALES: list[tuple[str, Callable[[], Envelope]]] = [
    ("return_label_issued", lambda: return_label_issued("o-1", "r-1", "RL0123456789AB")),
    ("return_received", lambda: return_received("o-1", "r-1")),
    ("refund_processed", lambda: payment_refunded("o-1", "rf-1", 1299)),
    ("order_cancelled", lambda: order_cancelled("o-1")),
]


@pytest.mark.parametrize(("template", "make_event"), AFTER_SALES, ids=[t for t, _ in AFTER_SALES])
def test_each_notification_is_recorded_once_when_its_event_comes_twice_under_new_ids(
    notifications: Notifications, template: str, make_event: Callable[[], Envelope]
) -> None:
    notifications.deliver(make_event())
    notifications.deliver(make_event())  # a re-sent answer: same facts, new event id
    notifications.deliver(make_event(), make_event())  # ... even twice in one batch

    (notification,) = notifications.log(template)
    assert notification.status == "sent"
    assert notification.recipient == "ada@example.com"
    announced = [p for p in notifications.announced() if p["template"] == template]
    assert [p["notification_id"] for p in announced] == [notification.notification_id]
    keys = [m.idempotency_key for m in notifications.channel.sent]
    assert keys.count(notification.notification_id) == 1


def test_two_returns_of_one_order_give_two_label_notifications(
    notifications: Notifications,
) -> None:
    notifications.deliver(return_label_issued("o-1", "r-1", "RL000000000001"))
    notifications.deliver(return_label_issued("o-1", "r-2", "RL000000000002"))

    log = notifications.log("return_label_issued")
    assert sorted(n.reference for n in log) == ["r-1", "r-2"]
    assert len({n.notification_id for n in log}) == 2
    assert sorted(n.body is not None and "RL000000000002" in n.body for n in log) == [False, True]


def test_two_refunds_of_one_order_give_two_refund_notifications(
    notifications: Notifications,
) -> None:
    notifications.deliver(payment_refunded("o-1", "rf-1", 1000))
    notifications.deliver(payment_refunded("o-1", "rf-2", 500))

    assert sorted(n.reference for n in notifications.log("refund_processed")) == ["rf-1", "rf-2"]


def test_a_zero_amount_refund_notifies_nobody(notifications: Notifications) -> None:
    before = len(notifications.announced())

    outcome = notifications.deliver(payment_refunded("o-1", "rf-1", 0))

    assert outcome.handled == 1
    assert notifications.log("refund_processed") == []
    assert len(notifications.announced()) == before


def test_a_notification_for_a_customer_not_yet_known_goes_out_with_the_order(
    database_url: str,
) -> None:
    service = Notifications(database_url)
    try:
        service.deliver(payment_refunded("o-2", "rf-1", 1299))
        (waiting,) = service.log("refund_processed")
        assert (waiting.status, waiting.recipient) == ("awaiting_contact", None)

        service.deliver(order_placed("o-2", email="bob@example.com", name="Bob"))

        (sent,) = service.log("refund_processed")
        assert (sent.status, sent.recipient) == ("sent", "bob@example.com")
        assert sent.body is not None and sent.body.startswith("Hello Bob,")
    finally:
        service.close()


def test_the_label_notification_names_the_carrier_and_the_label_reference(
    notifications: Notifications,
) -> None:
    notifications.deliver(return_label_issued("o-1", "r-1", "RL0123456789AB"))

    body = sent_body(notifications, "return_label_issued")
    assert "Label reference: RL0123456789AB" in body
    assert "simulated-post drop-off point" in body
    assert "Return: r-1" in body


def test_the_received_notification_lists_what_was_in_the_parcel(
    notifications: Notifications,
) -> None:
    notifications.deliver(return_received("o-1", "r-1", lines=[("T-MUG", 1), ("T-TEE", 3)]))

    body = sent_body(notifications, "return_received")
    assert "  1 x T-MUG\n  3 x T-TEE\n" in body


def test_the_received_notification_of_an_empty_parcel_says_so(
    notifications: Notifications,
) -> None:
    notifications.deliver(return_received("o-1", "r-1", lines=[]))

    assert "We found no items in it." in sent_body(notifications, "return_received")


def test_the_refund_notification_shows_the_amount_as_money(notifications: Notifications) -> None:
    notifications.deliver(payment_refunded("o-1", "rf-1", 1299))

    (notification,) = notifications.log("refund_processed")
    assert notification.subject == "Your refund for order o-1"
    assert "we have refunded 12.99 EUR" in sent_body(notifications, "refund_processed")
    assert "Refund reference: rf-1" in sent_body(notifications, "refund_processed")


def test_the_cancellation_notification_explains_why(notifications: Notifications) -> None:
    notifications.deliver(order_cancelled("o-1", detail="Your payment was declined by the bank."))

    body = sent_body(notifications, "order_cancelled")
    assert "Your payment was declined by the bank." in body
    assert "o-1 has been cancelled" in body


def test_order_level_notifications_keep_the_ids_they_had_before_references() -> None:
    legacy = str(uuid.uuid5(uuid.NAMESPACE_URL, "notification:o-1:order_confirmation"))

    assert notification_id("o-1", "order_confirmation") == legacy
    assert notification_id("o-1", "return_label_issued", "r-1") != notification_id(
        "o-1", "return_label_issued", "r-2"
    )


def test_the_confirmation_is_still_sent_once_with_its_old_id(notifications: Notifications) -> None:
    notifications.deliver(order_placed("o-1"))  # re-published under a new event id

    (confirmation,) = notifications.log("order_confirmation")
    assert confirmation.reference == ""
    assert confirmation.notification_id == notification_id("o-1", "order_confirmation")
    assert "Total: 20.00 EUR" in sent_body(notifications, "order_confirmation")
