"""Every service process serves Prometheus metrics of its own work."""

from __future__ import annotations

import httpx

from kit.testing.orders import order_body
from kit.testing.pipeline import SERVICES, Pipeline
from tests.integration.helpers import PipelineClient


def test_every_service_serves_its_message_counts_on_metrics(
    client: PipelineClient, pipeline: Pipeline
) -> None:
    client.wait_terminal([client.place(order_body([("T-TEE", 1)], customer="metrics"))["order_id"]])
    for service in SERVICES:
        response = httpx.get(f"{pipeline.url(service)}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert 'pipeline_messages_consumed_total{event_type="' in response.text, service
        assert "pipeline_messages_published_total" in response.text, service
    orders_metrics = httpx.get(f"{pipeline.url('orders')}/metrics", timeout=5).text
    assert "order_placed_to_completed_seconds_count" in orders_metrics
