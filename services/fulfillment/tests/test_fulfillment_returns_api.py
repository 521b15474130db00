"""The warehouse's goods-received API on every database, through HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fulfillment.testing import Fulfillment, issue_return_label, payment_captured
from kit.testing.service_harness import order_placed

PROBLEM_BASE = "https://order-pipeline.dev/problems/"
AUTHORIZED = [{"sku": "T-MUG", "quantity": 2}, {"sku": "T-TEE", "quantity": 1}]


@pytest.fixture
def fulfillment(database_url: str) -> Iterator[Fulfillment]:
    service = Fulfillment(database_url)
    service.deliver(order_placed("o-1", lines=[("T-MUG", 2), ("T-TEE", 1)]))
    service.deliver(payment_captured("o-1"))
    service.deliver(issue_return_label("o-1", "r-1", lines=[("T-MUG", 2), ("T-TEE", 1)]))
    yield service
    service.close()


@pytest.fixture
def api(fulfillment: Fulfillment) -> Iterator[TestClient]:
    with TestClient(fulfillment.app()) as client:
        yield client


def received(fulfillment: Fulfillment) -> list[dict[str, Any]]:
    return [payload for _, payload in fulfillment.emitted("ReturnReceived")]


def test_a_parcel_without_a_body_is_received_as_authorized(
    fulfillment: Fulfillment, api: TestClient
) -> None:
    response = api.post("/v1/returns/r-1/received")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "received"
    assert body["received_lines"] == AUTHORIZED
    (event,) = received(fulfillment)
    assert event["order_id"] == "o-1" and event["return_id"] == "r-1"
    assert event["lines"] == body["received_lines"]
    # Avro keeps milliseconds: the event's time is the stored time, truncated.
    stored_at = datetime.fromisoformat(body["received_at"])
    assert abs((event["received_at"] - stored_at).total_seconds()) < 0.001


def test_a_body_without_lines_means_the_authorized_lines(
    fulfillment: Fulfillment, api: TestClient
) -> None:
    response = api.post("/v1/returns/r-1/received", json={})

    assert response.status_code == 202
    assert received(fulfillment)[0]["lines"] == AUTHORIZED


def test_a_short_parcel_is_received_with_what_was_found(
    fulfillment: Fulfillment, api: TestClient
) -> None:
    response = api.post(
        "/v1/returns/r-1/received", json={"lines": [{"sku": "T-MUG", "quantity": 1}]}
    )

    assert response.status_code == 202
    assert response.json()["received_lines"] == [{"sku": "T-MUG", "quantity": 1}]
    assert response.json()["lines"] == AUTHORIZED
    assert received(fulfillment)[0]["lines"] == [{"sku": "T-MUG", "quantity": 1}]


def test_an_empty_parcel_is_received_with_no_lines(
    fulfillment: Fulfillment, api: TestClient
) -> None:
    response = api.post("/v1/returns/r-1/received", json={"lines": []})

    assert response.status_code == 202
    assert response.json()["received_lines"] == []
    assert received(fulfillment)[0]["lines"] == []


def test_receiving_twice_answers_200_with_the_first_record_and_emits_once(
    fulfillment: Fulfillment, api: TestClient
) -> None:
    first = api.post("/v1/returns/r-1/received", json={"lines": [{"sku": "T-TEE", "quantity": 1}]})
    again = api.post("/v1/returns/r-1/received")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    assert len(received(fulfillment)) == 1


@pytest.mark.parametrize(
    ("lines", "sku"),
    [
        ([{"sku": "T-CAP", "quantity": 1}], "T-CAP"),
        ([{"sku": "T-MUG", "quantity": 3}], "T-MUG"),
        ([{"sku": "T-MUG", "quantity": 2}, {"sku": "T-MUG", "quantity": 1}], "T-MUG"),
    ],
)
def test_lines_that_are_not_on_the_label_are_refused_and_nothing_is_recorded(
    fulfillment: Fulfillment, api: TestClient, lines: list[dict[str, Any]], sku: str
) -> None:
    response = api.post("/v1/returns/r-1/received", json={"lines": lines})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "invalid-return-lines"
    assert [error["sku"] for error in problem["errors"]] == [sku]
    assert received(fulfillment) == []
    assert api.get("/v1/returns/r-1").json()["status"] == "label_issued"


@pytest.mark.parametrize(
    "body",
    [
        {"lines": [{"sku": "T-MUG", "quantity": 0}]},
        {"lines": [{"sku": "T-MUG", "quantity": 1, "colour": "red"}]},
        {"lines": [], "comment": "unexpected"},
    ],
)
def test_malformed_bodies_are_validation_problems(api: TestClient, body: dict[str, Any]) -> None:
    response = api.post("/v1/returns/r-1/received", json=body)

    assert response.status_code == 422
    assert response.json()["type"] == PROBLEM_BASE + "validation-error"


def test_an_unknown_return_is_a_404_problem_for_both_endpoints(
    fulfillment: Fulfillment, api: TestClient
) -> None:
    for response in (api.post("/v1/returns/r-404/received"), api.get("/v1/returns/r-404")):
        assert response.status_code == 404
        assert response.json()["type"] == PROBLEM_BASE + "return-not-found"
    assert received(fulfillment) == []


def test_the_return_can_be_read_before_and_after_the_parcel_arrives(api: TestClient) -> None:
    before = api.get("/v1/returns/r-1")
    assert before.status_code == 200
    label = before.json()
    assert {k: label[k] for k in ("return_id", "order_id", "status", "carrier")} == {
        "return_id": "r-1",
        "order_id": "o-1",
        "status": "label_issued",
        "carrier": "simulated-post",
    }
    assert label["label_reference"].startswith("RL")
    assert (label["received_lines"], label["received_at"]) == (None, None)

    api.post("/v1/returns/r-1/received")
    after = api.get("/v1/returns/r-1").json()

    assert after["status"] == "received"
    assert after["received_lines"] == label["lines"]
    assert after["received_at"] is not None
