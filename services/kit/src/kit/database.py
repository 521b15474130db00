"""Engines for SQLite (embedded default) and PostgreSQL (production), and the kit's tables."""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.types import TypeDecorator

# BIGINT autoincrement on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def kit_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The outbox and inbox tables, defined in a service's own metadata (its own database),
    beside the consumer's dead letters and parked messages (`parking_tables`)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("topic", String(249), nullable=False),
        Column("message_key", String(255), nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("handled_at", UtcDateTime, nullable=False),
    )
    _define_parking_tables(metadata)
    return outbox, inbox


def parking_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The dead_letters and parked_messages tables `kit_tables` defined in `metadata`."""
    return metadata.tables["dead_letters"], metadata.tables["parked_messages"]


def _define_parking_tables(metadata: MetaData) -> None:
    # What this consumer group dead-lettered, by message: while a row is `blocking`, later
    # messages with its key wait in parked_messages, so an order's events keep their order.
    Table(
        "dead_letters",
        metadata,
        # The event_id header, or "topic:partition:offset" for a message without one.
        Column("message_id", String(300), primary_key=True),
        Column("key", String(255), nullable=False, index=True),
        Column("topic", String(249), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("status", String(16), nullable=False),  # blocking | released | purged
        Column("attempts", Integer, nullable=False),  # over every redrive, not just the last
        Column("error", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
    )
    Table(
        "parked_messages",
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),  # the arrival order
        Column("key", String(255), nullable=False, index=True),
        Column("topic", String(249), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        # The record as it was consumed, to be handled later exactly as if it came now.
        Column("message_key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=True),
        Column("headers", JSON, nullable=False),
        Column("parked_at", UtcDateTime, nullable=False),
    )


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps go in and come out as aware UTC, whatever the backend (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# For a service's DeclarativeBase: every `Mapped[datetime]` column is a UtcDateTime.
TYPE_ANNOTATIONS: dict[Any, Any] = {datetime: UtcDateTime}


def create_database_engine(url: str, *, for_reads: bool = False, **kwargs: Any) -> Engine:
    """`for_reads`: an engine for read-only work, which on SQLite never takes the write lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, begin="BEGIN" if for_reads else "BEGIN IMMEDIATE", **kwargs)
    if parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, **kwargs)


def writer_lock(url: str) -> AbstractContextManager[Any]:
    """What a writer holds for its whole transaction.

    SQLite has one writer at a time, and its busy handler makes waiting writers poll with
    sleeps of up to 100 ms, which collapses throughput when many threads of one process
    write. A process-wide lock hands the database over at once instead. PostgreSQL has row
    locks and needs none.
    """
    if make_url(url).get_backend_name() == "sqlite":
        return threading.Lock()
    return contextlib.nullcontext()


def _sqlite_engine(url: str, begin: str, **kwargs: Any) -> Engine:
    # Connections move between the event loop's worker threads; SQLite itself serialises writes.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=4,
        max_overflow=4,
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL + synchronous=NORMAL: commits survive a process crash without an fsync each.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Writers BEGIN IMMEDIATE: taking the write lock up front means two writers queue
        # instead of failing on a lock upgrade. Readers BEGIN (deferred): a snapshot, no lock.
        connection.exec_driver_sql(begin)

    return engine
