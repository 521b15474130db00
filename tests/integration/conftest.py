"""One pipeline for the integration suite: a real broker and five real service processes."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.testing.pipeline import SERVICES, Pipeline
from kit.testing.servers import create_postgres_database
from tests.integration.helpers import TEST_CATALOG, PipelineClient, ServiceControl, catalog_stock

GENEROUS_LIMITS = {
    "RATE_LIMIT": "100000/second",
    "MAX_OPEN_ORDERS_PER_CUSTOMER": "100000",
    "MAX_QUANTITY_PER_SKU": "1000000",
}


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def pipeline(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """Every scenario runs on each database backend. pytest finishes all tests of one backend
    and stops its pipeline before starting the next, so the consumer groups never overlap;
    the second pipeline starts from the groups' committed offsets."""
    work_dir: Path = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    seed = work_dir / "catalog.toml"
    seed.write_text(TEST_CATALOG)
    database_urls = None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        suffix = uuid.uuid4().hex[:8]
        database_urls = {s: create_postgres_database(server, f"{s}_{suffix}") for s in SERVICES}
    running = Pipeline(
        work_dir,
        kafka_bootstrap,
        database_urls=database_urls,
        env={
            "CATALOG_SEED_PATH": str(seed),
            # The carrier collects a parcel 2 s after the shipment is created: long enough
            # for "fulfilling, not yet dispatched" to be a state a cancellation can meet.
            "DISPATCH_DELAY_S": "2",
            # The scenarios place hundreds of orders for a handful of test customers: the
            # anti-hoarding and rate limits are tested on their own, with the defaults.
            **GENEROUS_LIMITS,
        },
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def client(pipeline: Pipeline) -> PipelineClient:
    client = PipelineClient(pipeline)
    # Scenarios stop inventory, which publishes the catalog: let it arrive before any does.
    client.wait_catalog()
    return client


@pytest.fixture
def services(pipeline: Pipeline) -> Iterator[ServiceControl]:
    """Stop, start or reconfigure services in a scenario; undone after it, pass or fail."""
    control = ServiceControl(pipeline)
    try:
        yield control
    finally:
        control.restore()


@pytest.fixture(scope="session")
def initial_stock() -> Counter[str]:
    """What the seeded catalog put on the shelves: the start of every stock ledger."""
    return catalog_stock()
