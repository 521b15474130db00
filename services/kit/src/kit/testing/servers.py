"""Real servers for tests: a Kafka broker and a PostgreSQL server, found or started.

Kafka, in order: KAFKA_BOOTSTRAP_SERVERS if set; testcontainers' Kafka module if a Docker
engine answers a ping (a docker client alone proves nothing); otherwise the broker from the
Maven jars (deploy/kafka). There is no "skip": without a broker the tests fail, loudly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from kit.settings import REPO_ROOT

log = logging.getLogger(__name__)

KAFKACTL = REPO_ROOT / "deploy" / "kafka" / "kafkactl.py"
PGCTL = REPO_ROOT / "deploy" / "postgres" / "pgctl.py"


def _load(path: Path, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def kafkactl() -> Any:
    return _load(KAFKACTL, "kafkactl")


def pgctl() -> Any:
    return _load(PGCTL, "pgctl")


def docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


@contextlib.contextmanager
def kafka_broker(work_dir: Path) -> Iterator[str]:
    """Yields a bootstrap address with every pipeline topic created."""
    ctl = kafkactl()
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        log.info("using the Kafka broker at %s (KAFKA_BOOTSTRAP_SERVERS)", bootstrap)
        ctl.create_topics(bootstrap)
        yield bootstrap
        return
    if docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            bootstrap = container.get_bootstrap_server()
            ctl.create_topics(bootstrap)
            yield bootstrap
        return
    controller_port, port = ctl.free_ports(2)
    broker = ctl.EmbeddedBroker(
        data_dir=work_dir / "kafka", port=port, controller_port=controller_port, heap="768m"
    )
    bootstrap = broker.start()
    try:
        ctl.create_topics(bootstrap)
        yield bootstrap
    finally:
        broker.stop()


@contextlib.contextmanager
def postgres_server() -> Iterator[int | str]:
    """Yields a port of a local server (or POSTGRES_URL when set)."""
    if url := os.environ.get("POSTGRES_URL"):
        yield url
        return
    ctl = pgctl()
    port = kafkactl().free_port()
    # Not under work_dir: as root the server runs as `postgres`, which cannot enter pytest's
    # private temp folders; /tmp itself is open to it.
    data_dir = Path(tempfile.mkdtemp(prefix="order-pipeline-pg-"))
    ctl.start(data_dir, port)
    try:
        yield port
    finally:
        ctl.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def create_postgres_database(server: int | str, name: str) -> str:
    if isinstance(server, str):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = create_engine(
            make_url(server).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return make_url(server).set(database=name).render_as_string(hide_password=False)
    url: str = pgctl().create_database(server, name)
    return url
