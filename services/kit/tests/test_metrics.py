"""Metrics count what happened: after the commit, once, and by route template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sample_service import SCHEMAS, SampleDatabase, order_completed, record_completion

from kit.consumer import BatchProcessor, Subscription
from kit.envelope import Envelope
from kit.http_metrics import UNMATCHED_ROUTE, HttpMetricsMiddleware
from kit.testing import service_harness
from kit.unit_of_work import UnitOfWork


@pytest.fixture
def db(database_url: str) -> Iterator[SampleDatabase]:
    database = SampleDatabase(database_url)
    yield database
    database.engine.dispose()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_after_commit_callbacks_run_only_when_the_transaction_commits(db: SampleDatabase) -> None:
    ran: list[str] = []
    with db.unit_of_work() as uow:
        uow.after_commit(lambda: ran.append("rolled back"))
    assert ran == []  # left without commit: rolled back, nothing counted
    with db.unit_of_work() as uow:
        uow.after_commit(lambda: ran.append("committed"))
        assert ran == []
        uow.commit()
    assert ran == ["committed"]


def test_a_handler_retried_in_isolation_is_counted_once(db: SampleDatabase) -> None:
    counted: list[str] = []
    calls = 0

    def flaky(envelope: Envelope, uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        uow.after_commit(lambda: counted.append(envelope.correlation_id))
        if calls <= 2:  # fails the fast path and the first isolated attempt
            raise RuntimeError("transient")
        record_completion(envelope, uow)

    subscription = Subscription(("orders.events",), {"OrderCompleted": flaky})
    processor = BatchProcessor(subscription, SCHEMAS, db.unit_of_work, group_id="m", max_attempts=3)
    record = service_harness.record_of(order_completed("o-7"), SCHEMAS, "orders.events")
    before = sample(
        "pipeline_messages_consumed_total",
        topic="orders.events",
        event_type="OrderCompleted",
        outcome="ok",
    )
    outcome = processor.process([record])
    assert (calls, outcome.handled, counted) == (3, 1, ["o-7"])
    after = sample(
        "pipeline_messages_consumed_total",
        topic="orders.events",
        event_type="OrderCompleted",
        outcome="ok",
    )
    assert after - before == 1
    assert sample("pipeline_handler_duration_seconds_count", event_type="OrderCompleted") >= 1


def test_http_requests_are_counted_by_route_template_and_status() -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.add_middleware(HttpMetricsMiddleware)
    labels = {"route": "/things/{thing_id}", "method": "GET", "status": "200"}
    unmatched = {"route": UNMATCHED_ROUTE, "method": "GET", "status": "404"}
    before = sample("pipeline_http_requests_total", **labels)
    before_unmatched = sample("pipeline_http_requests_total", **unmatched)
    with TestClient(app) as client:
        assert client.get("/things/1").status_code == 200
        assert client.get("/things/2").status_code == 200
        assert client.get("/no/such/path").status_code == 404
    assert sample("pipeline_http_requests_total", **labels) - before == 2
    assert sample("pipeline_http_requests_total", **unmatched) - before_unmatched == 1
    assert (
        REGISTRY.get_sample_value("pipeline_http_requests_total", {**labels, "route": "/things/1"})
        is None
    )  # never the raw path: ids would explode the series count
    duration = sample(
        "pipeline_http_request_duration_seconds_count", route="/things/{thing_id}", method="GET"
    )
    assert duration >= 2
