"""Stored first responses to POSTs with an Idempotency-Key, per client, until they expire.

Plain functions of a session: the gateway calls them inside the transaction that makes the
request's effect, so the effect and its record are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from kit.unit_of_work import UnitOfWork
from orders.adapters.tables import IdempotencyRecord


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: dict[str, Any]
    location: str | None
    expires_at: datetime


def find_response(session: Session, client_id: str, key: str) -> StoredResponse | None:
    """The record of `key`, live or expired (callers compare `expires_at`)."""
    return _load(session, client_id, key)


def delete_expired(session: Session, client_id: str, key: str, now: datetime) -> None:
    """Frees an expired key so it can be stored afresh. Only while still expired: a live row
    written meanwhile by another process stays, and our insert then hits the primary key."""
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.expires_at <= now,
        )
    )


def store_response(
    session: Session,
    client_id: str,
    key: str,
    response: StoredResponse,
    now: datetime,
) -> None:
    """Stages the record with the effect; flushing it raises IntegrityError if the key is
    stored already (a racing process won it)."""
    session.add(
        IdempotencyRecord(
            client_id=client_id,
            key=key,
            fingerprint=response.fingerprint,
            response_status=response.status,
            response_body=response.body,
            location=response.location,
            created_at=now,
            expires_at=response.expires_at,
        )
    )


def purge_expired(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Deletes every expired record; the number deleted. Made to be a periodic job's `run`
    (the job's caller commits)."""
    now = now or datetime.now(UTC)
    result = uow.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
    )
    return _rowcount(result)


def _load(session: Session, client_id: str, key: str) -> StoredResponse | None:
    # Core columns, not the ORM entity: a row loaded into the identity map would clash with
    # the insert of the same primary key after `delete_expired`.
    row = session.execute(
        select(
            IdempotencyRecord.fingerprint,
            IdempotencyRecord.response_status,
            IdempotencyRecord.response_body,
            IdempotencyRecord.location,
            IdempotencyRecord.expires_at,
        ).where(IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key)
    ).one_or_none()
    if row is None:
        return None
    return StoredResponse(row[0], row[1], row[2], row[3], row[4])


def _rowcount(result: object) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0
