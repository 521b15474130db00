"""API keys in the `api_keys` table: create, list, revoke, and authenticate presented keys.

The functions take a session and never commit: the caller decides the transaction.
`ApiKeyAuthenticator` is the gateway's read path, with a short in-process cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from orders.adapters.tables import ApiClient
from orders.domain.api_keys import (
    PresentedKey,
    Scope,
    checked_client_id,
    checked_name,
    checked_scopes,
    generate_key,
    secret_matches,
)


@dataclass(frozen=True)
class ApiKeyInfo:
    """Everything about a key but its secret: safe to show, log and cache."""

    key_id: str
    client_id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class CreatedKey:
    info: ApiKeyInfo
    token: str  # the only time the full key exists outside the client

    def __repr__(self) -> str:
        return f"CreatedKey(info={self.info!r}, token=<hidden>)"


@dataclass(frozen=True)
class Revocation:
    info: ApiKeyInfo
    already_revoked: bool  # revoking twice is harmless; the first revocation time stays


class Rejection(StrEnum):
    UNKNOWN_KEY = "unknown key"
    REVOKED = "revoked"
    WRONG_SECRET = "wrong secret"


class KeyRejectedError(Exception):
    """A well-formed key that does not authenticate. The reason is for logs, not callers."""

    def __init__(self, key_id: str, reason: Rejection) -> None:
        super().__init__(f"API key {key_id} rejected: {reason}")
        self.key_id = key_id
        self.reason = reason


def create_key(
    session: Session, client_id: str, name: str, scopes: Iterable[str], now: datetime
) -> CreatedKey:
    """Adds a new key for `client_id`; ValueError for an invalid client id, name or scopes."""
    issued = generate_key()
    row = ApiClient(
        key_id=issued.key_id,
        client_id=checked_client_id(client_id),
        name=checked_name(name),
        secret_hash=issued.secret_hash,
        scopes=[str(scope) for scope in checked_scopes(scopes)],
        created_at=now,
        revoked_at=None,
    )
    session.add(row)
    session.flush()  # a key id collision (1 in 2^48 per pair) fails here, not at commit
    return CreatedKey(_info(row), issued.token)


def list_keys(session: Session, client_id: str | None = None) -> list[ApiKeyInfo]:
    """Every key (of one client), oldest first, revoked ones included."""
    query = select(ApiClient).order_by(ApiClient.created_at, ApiClient.key_id)
    if client_id is not None:
        query = query.where(ApiClient.client_id == client_id)
    return [_info(row) for row in session.scalars(query)]


def revoke_key(session: Session, key_id: str, now: datetime) -> Revocation | None:
    """Revokes the key for good; None if there is no such key."""
    row = session.get(ApiClient, key_id, with_for_update=True)
    if row is None:
        return None
    already_revoked = row.revoked_at is not None
    if not already_revoked:
        row.revoked_at = now
        session.flush()
    return Revocation(_info(row), already_revoked)


def authenticate(session: Session, presented: PresentedKey) -> ApiKeyInfo:
    """The key's owner and scopes; KeyRejectedError for an unknown, revoked or wrong key."""
    found = _StoredKey.load(session, presented.key_id)
    if found is None:
        raise KeyRejectedError(presented.key_id, Rejection.UNKNOWN_KEY)
    return found.verify(presented)


@dataclass(frozen=True)
class _StoredKey:
    info: ApiKeyInfo
    secret_hash: str

    @classmethod
    def load(cls, session: Session, key_id: str) -> _StoredKey | None:
        row = session.get(ApiClient, key_id)
        return None if row is None else cls(_info(row), row.secret_hash)

    def verify(self, presented: PresentedKey) -> ApiKeyInfo:
        # The secret is checked first, so a revoked key's id alone learns nothing more.
        if not secret_matches(presented.secret, self.secret_hash):
            raise KeyRejectedError(presented.key_id, Rejection.WRONG_SECRET)
        if self.info.revoked:
            raise KeyRejectedError(presented.key_id, Rejection.REVOKED)
        return self.info


class ApiKeyAuthenticator:
    """Authenticates presented keys against the database, remembering each key it read
    for `ttl` so that a busy client costs one database read per `ttl`, not per request.

    The price: a key revoked in the database (by another process, e.g. the keys CLI) is
    still accepted by this process for up to `ttl` after the revocation. Keys that do not
    exist are not remembered, so random key ids cannot push real keys out of the cache.
    Thread-safe; `clock` is monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        sessions: Callable[[], Session],
        ttl: timedelta,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._sessions = sessions
        self._ttl_s = ttl.total_seconds()
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[_StoredKey, float]] = {}  # key id -> (key, expires at)

    def from_cache(self, presented: PresentedKey) -> ApiKeyInfo | None:
        """The verdict without I/O if the key is cached (info, or KeyRejectedError); None
        if the database must be asked."""
        with self._lock:
            entry = self._cache.get(presented.key_id)
            if entry is not None and entry[1] <= self._clock():
                del self._cache[presented.key_id]
                entry = None
        return None if entry is None else entry[0].verify(presented)

    def authenticate(self, presented: PresentedKey) -> ApiKeyInfo:
        """From the cache, else from the database (blocking: call it from a worker thread)."""
        cached = self.from_cache(presented)
        if cached is not None:
            return cached
        with self._sessions() as session:
            found = _StoredKey.load(session, presented.key_id)
        if found is None:
            raise KeyRejectedError(presented.key_id, Rejection.UNKNOWN_KEY)
        self._remember(found)
        return found.verify(presented)

    def forget(self, key_id: str) -> None:
        """Drops a cached key, e.g. after revoking it in this process."""
        with self._lock:
            self._cache.pop(key_id, None)

    def _remember(self, key: _StoredKey) -> None:
        now = self._clock()
        with self._lock:
            if len(self._cache) >= self._max_entries:
                self._cache = {k: e for k, e in self._cache.items() if e[1] > now}
                while len(self._cache) >= self._max_entries:
                    del self._cache[next(iter(self._cache))]  # the oldest entry
            self._cache[key.info.key_id] = (key, now + self._ttl_s)


def _info(row: ApiClient) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        client_id=row.client_id,
        name=row.name,
        scopes=tuple(Scope(scope) for scope in row.scopes),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
