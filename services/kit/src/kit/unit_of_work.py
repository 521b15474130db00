"""One transaction for a state change, the inbox mark and the outbox rows it emits.

A handler never talks to Kafka: it records what it emits here, and the relay publishes it
after the commit. Either all three are committed or none is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from kit.avro_codec import SchemaStore
from kit.envelope import Envelope, Headers, new_traceparent

log = logging.getLogger(__name__)


class UnroutedEventError(LookupError):
    """The service emitted an event type it has not declared a topic for."""


class UnitOfWork:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        schemas: SchemaStore,
        routes: Mapping[str, str],
        outbox_table: Table,
        inbox_table: Table,
        service_name: str,
        on_outbox_commit: Callable[[], None] = lambda: None,
        write_lock: AbstractContextManager[Any] | None = None,
        on_emit_committed: Callable[[Envelope], None] | None = None,
        write_outbox: bool = True,
        assign_event_id: Callable[[Envelope], str] | None = None,
    ) -> None:
        """`write_outbox=False` and `assign_event_id` are for replays (`kit.replay`): staged
        messages are dropped at commit instead of written, so nothing reaches the relay (the
        commit callbacks still see them); `assign_event_id` gives each emitted message the id
        it had when it was first emitted, so a rebuilt read model names the same messages."""
        self._session_factory = session_factory
        self._schemas = schemas
        self._routes = routes
        self._outbox = outbox_table
        self._inbox = inbox_table
        self._service_name = service_name
        self._on_outbox_commit = on_outbox_commit
        self._write_lock = write_lock or contextlib.nullcontext()
        self._on_emit_committed = on_emit_committed
        self._write_outbox = write_outbox
        self._assign_event_id = assign_event_id
        self._outbox_rows: list[dict[str, Any]] = []
        self._inbox_rows: list[dict[str, Any]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._session: Session | None = None
        self._retained: list[object] = []

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("use the unit of work inside a `with` block")
        return self._session

    @property
    def service_name(self) -> str:
        return self._service_name

    @property
    def metadata(self) -> MetaData:
        """The service's tables, the kit's among them (`kit.database.kit_tables`)."""
        return self._inbox.metadata

    def __enter__(self) -> UnitOfWork:
        self._write_lock.__enter__()
        self._session = self._session_factory()
        self._retained = []
        self._outbox_rows.clear()
        self._inbox_rows.clear()
        self._after_commit.clear()
        return self

    def __exit__(self, *exc_info: object) -> None:
        session, self._session = self.session, None
        try:
            # close() rolls back whatever was not committed; unlike rollback() it leaves
            # loaded objects readable (detached) for the caller's response.
            session.close()
        finally:
            self._write_lock.__exit__(None, None, None)

    def retain(self, objects: Iterable[object]) -> None:
        """Keeps loaded objects alive for the transaction: the session's identity map holds
        them only weakly, and a prefetch is useless if they are collected before use."""
        self._retained.extend(objects)

    # -- emitting -------------------------------------------------------------------------

    def emit(self, envelope: Envelope) -> Envelope:
        """Stage an event or command; it is encoded now so a bad payload fails its handler.

        Returns the envelope as staged: under a replay it may carry another event id."""
        if self._assign_event_id is not None:
            envelope = dataclasses.replace(envelope, event_id=self._assign_event_id(envelope))
        topic = self._routes.get(envelope.event_type)
        if topic is None:
            raise UnroutedEventError(
                f"{self._service_name} declares no topic for {envelope.event_type}"
            )
        self.emit_raw(
            topic,
            envelope.key,
            self._schemas.encode(envelope.event_type, envelope.payload),
            envelope.headers(),
            envelope.event_type,
        )
        if self._on_emit_committed is not None:
            self.after_commit(functools.partial(self._on_emit_committed, envelope))
        return envelope

    def emit_raw(
        self, topic: str, key: str, value: bytes, headers: Headers, event_type: str
    ) -> None:
        """Stage bytes as they are (dead letters keep the original bytes)."""
        self._outbox_rows.append(
            {
                "topic": topic,
                "message_key": key,
                "value": value,
                "headers": [[name, raw.decode("utf-8", "replace")] for name, raw in headers],
                "event_type": event_type,
                "created_at": datetime.now(UTC),
            }
        )

    def new_event(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        key: str,
        correlation_id: str,
        trace_id: str | None = None,
    ) -> Envelope:
        """An event that starts a causal chain (an API call, a timer), not a reaction."""
        return Envelope(
            event_type=event_type,
            key=key,
            payload=payload,
            correlation_id=correlation_id,
            traceparent=new_traceparent(trace_id),
            producer=self._service_name,
        )

    # -- inbox ----------------------------------------------------------------------------

    def already_handled(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(event_ids)
        if not ids:
            return set()
        rows = self.session.execute(
            select(self._inbox.c.event_id).where(self._inbox.c.event_id.in_(ids))
        )
        return {row[0] for row in rows}

    def mark_handled(self, envelope: Envelope) -> None:
        self._inbox_rows.append(
            {
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "handled_at": datetime.now(UTC),
            }
        )

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once the transaction commits, never if it rolls back: metrics
        count what happened, not what a rolled-back or re-run handler attempted."""
        self._after_commit.append(callback)

    # -- savepoints: one message's work can be undone without losing the batch -------------

    def checkpoint(self) -> tuple[int, int, int]:
        return len(self._outbox_rows), len(self._inbox_rows), len(self._after_commit)

    def rewind(self, checkpoint: tuple[int, int, int]) -> None:
        del self._outbox_rows[checkpoint[0] :]
        del self._inbox_rows[checkpoint[1] :]
        del self._after_commit[checkpoint[2] :]

    def commit(self) -> None:
        session = self.session
        if self._inbox_rows:
            session.execute(insert(self._inbox), self._inbox_rows)
        emitted = bool(self._outbox_rows) and self._write_outbox
        if emitted:
            session.execute(insert(self._outbox), self._outbox_rows)
        session.commit()
        self._outbox_rows.clear()
        self._inbox_rows.clear()
        if emitted:
            self._on_outbox_commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the commit stands: a metric must never turn it into a failure
                log.exception("after-commit callback failed")
