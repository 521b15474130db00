"""Accepting orders never depends on Kafka: with the broker down the gateway still says 202,
and the orders flow once the broker is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kit.testing.orders import order_body
from kit.testing.pipeline import Pipeline
from kit.testing.servers import kafkactl
from tests.integration.helpers import TEST_CATALOG, PipelineClient


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Any]:
    """A broker of this test's own: it is stopped and restarted, which the shared one can't be."""
    ctl = kafkactl()
    port, controller_port = ctl.free_ports(2)
    broker = ctl.EmbeddedBroker(tmp_path / "kafka", port=port, controller_port=controller_port)
    broker.start()
    broker.create_topics()
    try:
        yield broker
    finally:
        broker.stop()


def test_orders_accepted_while_kafka_is_down_complete_when_it_returns(
    own_broker: Any, tmp_path: Path
) -> None:
    broker = own_broker
    seed = tmp_path / "catalog.toml"
    seed.write_text(TEST_CATALOG)
    pipeline = Pipeline(
        tmp_path / "pipeline",
        broker.bootstrap,
        env={"CATALOG_SEED_PATH": str(seed)},
    )
    client = PipelineClient(pipeline)
    pipeline.start()
    try:
        client.wait_terminal([client.place(order_body([("T-TEE", 1)]))["order_id"]])

        broker.stop()
        accepted = []
        for n in range(100):
            response = client.http.post(
                "/v1/orders", json=order_body([("T-MUG", 1)], customer=f"o{n}")
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["order_id"])
        assert {client.order(o)["status"] for o in accepted} == {"PENDING"}

        broker.start()
        finished = client.wait_terminal(accepted, timeout_s=180)
        assert {o["status"] for o in finished.values()} == {"COMPLETED"}
    finally:
        pipeline.stop()
