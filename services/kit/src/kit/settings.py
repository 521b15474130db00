"""Typed settings shared by every service; each service extends them with its own."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[4]


class ServiceSettings(BaseSettings):
    """Read from the environment (no prefix), so one process = one service's environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    service_name: str = Field(description="Name in logs, metrics and the consumer group id")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means the embedded SQLite file .run/<service>.db",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    schemas_dir: Path = REPO_ROOT / "schemas"
    data_dir: Path = REPO_ROOT / ".run"

    # Batching is what makes the pipeline fast: one DB transaction per consumed batch.
    consumer_max_batch: int = 500
    consumer_poll_timeout_ms: int = 100
    handler_max_attempts: int = 3
    relay_max_batch: int = 1000
    relay_poll_interval_s: float = 0.5
    producer_linger_ms: int = 2
    # For fire drills and tests only: makes this service's handlers fail for these
    # messages, as a bug would, so dead-lettering, parking and redrive can be rehearsed.
    drill_fail_messages: str = Field(
        default="",
        description="Comma-separated EventType:key pairs whose handler fails (DrillFailure)",
    )

    @field_validator("drill_fail_messages")
    @classmethod
    def _drill_pairs(cls, value: str) -> str:
        parse_drill_pairs(value)  # a typo fails at start, not silently in a drill
        return value

    def drill_failures(self) -> frozenset[tuple[str, str]]:
        return parse_drill_pairs(self.drill_fail_messages)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / (self.service_name + '.db')}"


def parse_drill_pairs(text: str) -> frozenset[tuple[str, str]]:
    """`OrderPlaced:o-1,StockReserved:o-2` → {("OrderPlaced", "o-1"), ("StockReserved", "o-2")}."""
    pairs = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        event_type, colon, key = item.partition(":")
        if not (colon and event_type and key):
            raise ValueError(f"DRILL_FAIL_MESSAGES: {item!r} is not EventType:key")
        pairs.add((event_type, key))
    return frozenset(pairs)
