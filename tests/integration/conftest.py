"""One pipeline for the integration suite: a real broker and five real service processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.testing.pipeline import Pipeline
from tests.integration.helpers import TEST_CATALOG, PipelineClient


@pytest.fixture(scope="session")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    work_dir: Path = tmp_path_factory.mktemp("pipeline")
    seed = work_dir / "catalog.toml"
    seed.write_text(TEST_CATALOG)
    running = Pipeline(work_dir, kafka_bootstrap, env={"CATALOG_SEED_PATH": str(seed)})
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def client(pipeline: Pipeline) -> PipelineClient:
    return PipelineClient(pipeline)
