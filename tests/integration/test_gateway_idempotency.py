"""Every POST carries an Idempotency-Key: a retry gets the first response and changes nothing,
whatever the timing, so a storefront may retry as often as it likes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from tests.integration.helpers import PipelineClient, problem_type

REPLAYED = "Idempotent-Replayed"


def orders_of(client: PipelineClient, customer: str) -> list[str]:
    rows = client.query("orders", "SELECT order_id FROM orders WHERE customer_id = ?", customer)
    return [order_id for (order_id,) in rows]


def test_a_post_without_an_idempotency_key_is_a_400_and_places_nothing(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    response = httpx.post(
        client.gateway + "/v1/orders",
        json=order_body([("T-TEE", 1)], customer="no-idempotency-key"),
        headers={"Authorization": f"Bearer {pipeline.api_key()}"},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert problem_type(response) == "idempotency-key-missing"
    assert orders_of(client, "no-idempotency-key") == []


def test_a_retry_with_the_same_key_and_body_replays_the_first_response(
    client: PipelineClient,
) -> None:
    client.place(order_body([("T-TEE", 1)], customer="catalog-ready"))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = order_body([("T-TEE", 2)], customer="retrying")
    first = client.http.post("/v1/orders", json=body, headers=key)
    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    # the same request, its JSON formatted differently
    retry = client.http.post(
        "/v1/orders",
        content=httpx.Request("POST", "/", json=dict(reversed(body.items()))).content,
        headers={**key, "Content-Type": "application/json"},
    )
    assert retry.status_code == 202, retry.text
    assert retry.headers[REPLAYED] == "true"
    assert retry.json() == first.json()  # the stored body, status PENDING and all
    assert retry.headers["Location"] == first.headers["Location"]
    assert orders_of(client, "retrying") == [first.json()["order_id"]]


def test_the_same_key_with_another_body_is_a_422(client: PipelineClient) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = client.http.post(
        "/v1/orders", json=order_body([("T-TEE", 1)], customer="key-reuser"), headers=key
    )
    assert first.status_code == 202, first.text
    other = client.http.post(
        "/v1/orders", json=order_body([("T-TEE", 3)], customer="key-reuser"), headers=key
    )
    assert other.status_code == 422, other.text
    assert problem_type(other) == "idempotency-key-reused"
    # the key belongs to one operation: on another path too
    cancel = client.http.post(f"/v1/orders/{first.json()['order_id']}/cancel", headers=key)
    assert cancel.status_code == 422, cancel.text
    assert orders_of(client, "key-reuser") == [first.json()["order_id"]]


async def test_concurrent_identical_requests_place_exactly_one_order(
    client: PipelineClient,
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = order_body([("T-MUG", 1)], customer="double-clicker")
    async with client.async_http() as http:
        responses = await asyncio.gather(
            *(http.post("/v1/orders", json=body, headers=key) for _ in range(20))
        )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {202, 409}, [r.text for r in responses]
    accepted = [r for r in responses if r.status_code == 202]
    assert accepted, statuses
    assert {r.json()["order_id"] for r in accepted} == set(orders_of(client, "double-clicker"))
    assert len(orders_of(client, "double-clicker")) == 1
    assert sum(REPLAYED not in r.headers for r in accepted) <= 1
    for refused in (r for r in responses if r.status_code == 409):
        assert problem_type(refused) == "idempotency-key-in-use"
    # once the first has finished, every retry gets its answer
    late = client.http.post("/v1/orders", json=body, headers=key)
    assert late.status_code == 202
    assert late.headers[REPLAYED] == "true"
    assert late.json()["order_id"] == accepted[0].json()["order_id"]


def test_keys_are_scoped_per_client(client: PipelineClient, pipeline: Pipeline) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = order_body([("T-TEE", 1)], customer="shared-key")
    with pipeline.gateway("storefront-2") as other:
        mine = client.http.post("/v1/orders", json=body, headers=key)
        theirs = other.post("/v1/orders", json=body, headers=key)
    assert mine.status_code == theirs.status_code == 202
    assert REPLAYED not in theirs.headers
    assert mine.json()["order_id"] != theirs.json()["order_id"]
    assert sorted(orders_of(client, "shared-key")) == sorted(
        [mine.json()["order_id"], theirs.json()["order_id"]]
    )


def test_a_replayed_cancel_does_not_run_again(client: PipelineClient) -> None:
    order_id = client.place(order_body([("T-TEE", 1)], customer="cancel-twice"))["order_id"]
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = client.http.post(f"/v1/orders/{order_id}/cancel", headers=key)
    assert first.status_code == 202, first.text
    client.wait_settled([order_id])
    replay = client.http.post(f"/v1/orders/{order_id}/cancel", headers=key)
    assert replay.status_code == 202
    assert replay.headers[REPLAYED] == "true"
    assert replay.json() == first.json()  # the status as it was then, not CANCELLED now
    assert first.json()["status"] != "CANCELLED"
    assert _timeline_count(client, order_id, "CustomerCancel") == 1


def test_a_replayed_return_does_not_start_a_second_one(client: PipelineClient) -> None:
    order_id = client.place(order_body([("T-TEE", 2)], customer="return-twice"))["order_id"]
    assert client.wait_settled([order_id])[order_id]["status"] == "COMPLETED"
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body: dict[str, Any] = {"lines": [{"sku": "T-TEE", "quantity": 1}], "reason": "too big"}
    first = client.http.post(f"/v1/orders/{order_id}/returns", json=body, headers=key)
    assert first.status_code == 202, first.text
    replay = client.http.post(f"/v1/orders/{order_id}/returns", json=body, headers=key)
    assert replay.status_code == 202, replay.text
    assert replay.headers[REPLAYED] == "true"
    assert replay.json() == first.json()
    # a new key is a new request: one return at a time
    again = client.http.post(f"/v1/orders/{order_id}/returns", json=body)
    assert again.status_code == 409
    assert problem_type(again) == "return-in-progress"
    returns = client.query(
        "orders", "SELECT return_id FROM order_returns WHERE order_id = ?", order_id
    )
    assert returns == [(first.json()["return_id"],)]
    assert _timeline_count(client, order_id, "CustomerReturn") == 1

    # The parcel comes back, so the order settles (scenarios share the pipeline's books).
    client.wait_order(
        order_id, lambda o: bool(o["returns"][-1]["label_reference"]), "given a return label"
    )
    assert client.receive_return(first.json()["return_id"]).status_code == 202
    assert client.wait_settled([order_id])[order_id]["status"] == "RETURNED"


def _timeline_count(client: PipelineClient, order_id: str, event_type: str) -> int:
    rows = client.query(
        "orders",
        "SELECT COUNT(*) FROM order_timeline WHERE order_id = ? AND event_type = ?",
        order_id,
        event_type,
    )
    return int(rows[0][0])
