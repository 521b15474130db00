"""schemathesis fuzzes every operation of the live gateway's published OpenAPI document:
no answer is a 5xx, and every answer is one the document describes (status code, content
type, headers, body schema)."""

from __future__ import annotations

import uuid
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kit.testing.orders import order_body
from tests.integration.helpers import PipelineClient, ServiceControl

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per operation and generation mode: enough to reach every validation branch, small enough
# that the whole run stays around a minute per backend.
EXAMPLES = 20


def test_every_operation_answers_as_its_openapi_document_says(
    client: PipelineClient, services: ServiceControl
) -> None:
    # A long-poll the fuzzer asks for must not hold it for a minute, nor may the fuzzer's
    # own pace hit the rate limit.
    services.restart("orders", {"LONG_POLL_MAX_WAIT": "PT1S", "RATE_LIMIT": "100000/second"})
    client.place(order_body([("T-TEE", 1)], customer="catalog-ready"))
    schema = schemathesis.openapi.from_url(client.gateway + "/openapi.json")
    session = requests.Session()
    auth = {"Authorization": f"Bearer {client.pipeline.api_key()}"}

    failures: list[str] = []
    without_invalid_inputs: list[str] = []
    operations: list[APIOperation[Any, Any, Any, Any]] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is broken
        operations.append(result.ok())
    assert {op.label for op in operations} >= {
        "POST /v1/orders",
        "GET /v1/orders",
        "GET /v1/orders/{order_id}",
        "POST /v1/orders/{order_id}/cancel",
        "POST /v1/orders/{order_id}/returns",
    }
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, session, auth)
            except Unsatisfiable:
                # An operation without parameters or body (GET /health) has no invalid input.
                if mode is not GenerationMode.NEGATIVE:
                    raise
                without_invalid_inputs.append(operation.label)
            except Exception as error:  # every failing operation is reported, not just the first
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures)
    assert not [label for label in without_invalid_inputs if " /v1/" in label]


def _fuzz(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    session: requests.Session,
    auth: dict[str, str],
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: Case[Any]) -> None:
        # A fresh Idempotency-Key per POST, as a storefront sends; the key rules have their
        # own tests (test_gateway_idempotency).
        headers = dict(auth)
        if case.method == "POST":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        case.call_and_validate(session=session, headers=headers, checks=CHECKS, timeout=30)

    call()


def test_real_orders_and_refusals_answer_as_documented(client: PipelineClient) -> None:
    """Fuzzed SKUs and order ids rarely name real ones: walk one real order through every
    operation, so its 2xx bodies and typical refusals are checked against the document too."""
    client.place(order_body([("T-TEE", 1)], customer="catalog-ready"))
    schema = schemathesis.openapi.from_url(client.gateway + "/openapi.json")
    session = requests.Session()
    auth = {"Authorization": f"Bearer {client.pipeline.api_key()}"}
    reader = {"Authorization": f"Bearer {client.pipeline.api_key(scopes=('orders:read',))}"}

    def call(
        method: str, path: str, headers: dict[str, str] | None = None, **data: Any
    ) -> schemathesis.Response:
        case = schema[path][method].Case(**data)
        return case.call_and_validate(
            session=session, headers=headers if headers is not None else auth, checks=CHECKS
        )

    idempotency = {"Idempotency-Key": str(uuid.uuid4())}
    body = order_body([("T-TEE", 2)], customer="schema-walker")
    placed = call("POST", "/v1/orders", auth | idempotency, body=body)
    assert placed.status_code == 202
    replayed = call("POST", "/v1/orders", auth | idempotency, body=body)
    assert replayed.headers["idempotent-replayed"] == ["true"]
    order = {"order_id": placed.json()["order_id"]}
    assert call("GET", "/v1/orders/{order_id}", path_parameters=order).status_code == 200
    waited = call(
        "GET",
        "/v1/orders/{order_id}",
        path_parameters=order,
        query={"wait": 1, "status": "PENDING"},
    )
    assert waited.status_code == 200
    listed = call("GET", "/v1/orders", query={"customer_id": "schema-walker", "limit": 1})
    assert listed.status_code == 200
    assert call("GET", "/v1/orders", query={"cursor": "not-a-cursor"}).status_code == 400

    fresh = auth | {"Idempotency-Key": str(uuid.uuid4())}
    returned = {"lines": [{"sku": "T-TEE", "quantity": 1}], "reason": "schema check"}
    returns = call(
        "POST", "/v1/orders/{order_id}/returns", fresh, path_parameters=order, body=returned
    )
    assert returns.status_code in (202, 409)
    if returns.status_code == 202:  # it was delivered already: bring the return to an end,
        # so the shared pipeline holds no order waiting forever for a parcel
        client.wait_order(
            order["order_id"], lambda o: o["returns"][0]["label_reference"], "labelled"
        )
        assert client.receive_return(returns.json()["return_id"]).status_code == 202
        client.wait_settled([order["order_id"]])
    fresh = auth | {"Idempotency-Key": str(uuid.uuid4())}
    cancelled = call("POST", "/v1/orders/{order_id}/cancel", fresh, path_parameters=order)
    assert cancelled.status_code in (202, 409)
    reused = call("POST", "/v1/orders", auth | idempotency, body=order_body([("T-TEE", 3)]))
    assert reused.status_code == 422
    missing = {"order_id": "00000000-0000-0000-0000-000000000000"}
    assert call("GET", "/v1/orders/{order_id}", path_parameters=missing).status_code == 404
    assert call("GET", "/v1/orders", {}).status_code == 401
    refused = call("POST", "/v1/orders", reader | {"Idempotency-Key": "k"}, body=body)
    assert refused.status_code == 403
    assert call("POST", "/v1/orders", auth, body=body).status_code == 400
