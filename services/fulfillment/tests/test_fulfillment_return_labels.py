"""IssueReturnLabel on every database: one label per return, however often it is asked for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from fulfillment.adapters.tables import ReturnAuthorization
from fulfillment.testing import Fulfillment, issue_return_label, payment_captured
from kit.testing.service_harness import order_placed


@pytest.fixture
def fulfillment(database_url: str) -> Iterator[Fulfillment]:
    service = Fulfillment(database_url)
    service.deliver(order_placed("o-1", lines=[("T-MUG", 2), ("T-TEE", 1)]))
    service.deliver(payment_captured("o-1"))
    yield service
    service.close()


def authorizations(service: Fulfillment) -> list[ReturnAuthorization]:
    with service.session() as session:
        return list(session.scalars(select(ReturnAuthorization)))


def test_a_label_is_issued_stored_and_acknowledged(fulfillment: Fulfillment) -> None:
    fulfillment.deliver(issue_return_label("o-1", "r-1", lines=[("T-MUG", 1)]))

    (stored,) = authorizations(fulfillment)
    assert (stored.return_id, stored.order_id, stored.status) == ("r-1", "o-1", "label_issued")
    assert stored.lines == [{"sku": "T-MUG", "quantity": 1}]
    assert stored.label_reference.startswith("RL") and len(stored.label_reference) == 14
    assert (stored.received_lines, stored.received_at) == (None, None)
    assert fulfillment.emitted("ReturnLabelIssued") == [
        (
            "ReturnLabelIssued",
            {
                "order_id": "o-1",
                "return_id": "r-1",
                "carrier": "simulated-post",
                "label_reference": stored.label_reference,
            },
        )
    ]


def test_a_label_asked_for_twice_is_the_same_label_in_one_row(fulfillment: Fulfillment) -> None:
    fulfillment.deliver(issue_return_label("o-1", "r-1"))
    fulfillment.deliver(issue_return_label("o-1", "r-1"))  # the saga's retry: a new event id

    acks = [payload for _, payload in fulfillment.emitted("ReturnLabelIssued")]
    assert len(acks) == 2 and acks[0] == acks[1]
    with fulfillment.session() as session:
        assert session.scalar(select(func.count()).select_from(ReturnAuthorization)) == 1


def test_a_repeat_in_the_same_batch_is_still_one_label(fulfillment: Fulfillment) -> None:
    outcome = fulfillment.deliver(
        issue_return_label("o-1", "r-1"), issue_return_label("o-1", "r-1")
    )

    assert outcome.handled == 2
    assert len(authorizations(fulfillment)) == 1
    assert len(fulfillment.emitted("ReturnLabelIssued")) == 2


def test_two_returns_of_one_order_get_two_labels(fulfillment: Fulfillment) -> None:
    fulfillment.deliver(issue_return_label("o-1", "r-1", lines=[("T-MUG", 1)]))
    fulfillment.deliver(issue_return_label("o-1", "r-2", lines=[("T-TEE", 1)]))

    labels = {a.return_id: a.label_reference for a in authorizations(fulfillment)}
    assert set(labels) == {"r-1", "r-2"}
    assert labels["r-1"] != labels["r-2"]


def test_a_label_for_an_order_never_seen_is_still_issued(database_url: str) -> None:
    service = Fulfillment(database_url)
    try:
        service.deliver(issue_return_label("o-unknown", "r-9"))
        assert [t for t, _ in service.emitted()] == ["ReturnLabelIssued"]
    finally:
        service.close()
