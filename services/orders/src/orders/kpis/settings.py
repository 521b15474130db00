"""Settings of the `kpis` process, from the environment.

The broker, log level and schemas are the pipeline's shared variables; everything that is
the KPI process's own starts with `KPIS_`, so it can sit in one environment with the
services (honcho gives every process the same one).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kit.settings import REPO_ROOT


class KpisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    log_level: str = "INFO"
    schemas_dir: Path = REPO_ROOT / "schemas"

    kpis_app_id: str = Field(
        "order-pipeline-kpis",
        description="faust app id: the consumer group and the prefix of its changelog topics",
    )
    kpis_source_topic: str = Field("orders.events", description="The order events to window")
    kpis_topic_partitions: int = Field(
        6,
        description="Partitions of the source topic; the changelog topics get as many, "
        "since a table's partition follows the event's",
    )
    kpis_replication_factor: int = Field(
        1, description="Replicas of the changelog topics (1: the single-broker cluster)"
    )
    kpis_http_host: str = "127.0.0.1"
    kpis_http_port: int = Field(8005, description="GET /metrics and GET /health")
    kpis_window_grace_s: float = Field(
        10.0,
        description="A minute counts as closed this long after it ended, so events still "
        "in the outbox or in flight are in it",
    )
    kpis_window_retention: timedelta = Field(
        timedelta(hours=1),
        description="Minutes are kept this long; an event for an older minute is dropped",
    )
    kpis_data_dir: Path = Field(
        REPO_ROOT / ".run" / "kpis",
        description="faust's data directory (the tables live in memory; it only holds "
        "faust's own bookkeeping)",
    )

    @property
    def broker_urls(self) -> list[str]:
        return [f"kafka://{host.strip()}" for host in self.kafka_bootstrap_servers.split(",")]
