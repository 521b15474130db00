"""Idempotency-Key on every POST, after draft-ietf-httpapi-idempotency-key-header.

A client sends `Idempotency-Key: <key>` (a Structured Field string, `"..."`, or the bare
key; 1-255 printable ASCII characters) and may then retry the POST as often as it likes:

- the first request runs; a 2xx response is stored with the key, for `ttl` (24 h default);
- a retry with the same key and the same request (method, path, JSON body — formatting and
  key order do not matter) gets the stored status, body and Location again, with
  `Idempotent-Replayed: true`, and changes nothing;
- the same key with another request: 422 `idempotency-key-reused`;
- the same key while the first request is still running: 409 `idempotency-key-in-use`;
- a request that fails (a problem, any error) stores nothing: the client fixes the request
  and retries with the same key.

Keys are scoped per client: two clients may use the same key. The record is written in the
same transaction as the request's effect, so a crash between the commit and the response
leaves a record that the retry finds: it gets the order, never a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple, TypeVar

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from kit.problems import ProblemError
from kit.service import Runtime
from kit.unit_of_work import UnitOfWork
from orders.adapters.idempotency_store import (
    StoredResponse,
    delete_expired,
    find_response,
    store_response,
)

T = TypeVar("T")

DEFAULT_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255  # the column's width
REPLAYED_HEADER = "Idempotent-Replayed"


_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
IDEMPOTENCY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Idempotency-Key missing or invalid", "content": _PROBLEM},
    409: {"description": "The same Idempotency-Key is still being processed", "content": _PROBLEM},
    422: {
        "description": "Invalid request, or the Idempotency-Key was used for another request",
        "content": _PROBLEM,
    },
}
"""For a POST route's `responses=`, so the OpenAPI document lists what may be answered."""


class Rendered(NamedTuple):
    """What `work`'s result answers: status, a JSON-ready body and the Location, if any."""

    status: int
    body: dict[str, Any]
    location: str | None = None


@dataclass(frozen=True)
class IdempotentRequest:
    key: str
    fingerprint: str  # sha256 hex of method, path and the canonical JSON body


def fingerprint(method: str, path: str, body: Any) -> str:
    """The same for requests that differ only in JSON formatting or key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).hexdigest()


def parse_key(header: str | None) -> str:
    """The key of an `Idempotency-Key` header value; ProblemError 400 if missing or invalid."""
    if header is None:
        raise ProblemError(
            400,
            "idempotency-key-missing",
            "Idempotency-Key header required",
            "every POST needs an Idempotency-Key header: a unique value (a UUID) per "
            "operation, sent again unchanged on every retry of that operation",
        )
    key = _sf_string(header) if header.startswith('"') else header
    if key is None or not 1 <= len(key) <= MAX_KEY_LENGTH or not _printable_ascii(key):
        raise ProblemError(
            400,
            "idempotency-key-invalid",
            "Invalid Idempotency-Key",
            f"the Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
        )
    return key


async def idempotent_request(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required. A unique key per operation (a UUID), resent unchanged on "
            "retries; 1-255 printable ASCII characters. Remembered for 24 hours.",
        ),
    ] = None,
) -> IdempotentRequest:
    """FastAPI dependency: the key (400 if missing) and the request's fingerprint."""
    key = parse_key(idempotency_key)
    raw = await request.body()  # cached by Starlette: the body model still parses it
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:  # not JSON: FastAPI refuses it anyway; the bytes identify it
        body = raw.hex()
    return IdempotentRequest(key, fingerprint(request.method, request.url.path, body))


IdempotentRequestDep = Annotated[IdempotentRequest, Depends(idempotent_request)]


class InFlightKeys:
    """The (client, key) pairs whose first request is running in this process.

    Across processes the database decides: the loser's insert hits the primary key."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def claim(self, client_id: str, key: str) -> Iterator[None]:
        with self._lock:
            if (client_id, key) in self._keys:
                raise _in_use(key)
            self._keys.add((client_id, key))
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard((client_id, key))


# One per process: every request of the process must see the same registry.
IN_FLIGHT = InFlightKeys()


async def run_idempotent(
    runtime: Runtime,
    client_id: str,
    request: IdempotentRequest,
    work: Callable[[UnitOfWork], T],
    render: Callable[[T], Rendered],
    *,
    ttl: timedelta = DEFAULT_TTL,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    in_flight: InFlightKeys = IN_FLIGHT,
) -> JSONResponse:
    """Runs `work` once per (client, key) and answers every retry with its first response.

    `work(uow)` runs through the group committer, and `render(result)` inside the same
    transaction; a 2xx rendering is stored with the key in that transaction. Both may run
    twice (the committer re-runs a batch in savepoints when one request fails), so they
    must not act outside the unit of work. Whatever `work` or `render` raises propagates
    and stores nothing. Raises ProblemError 409 `idempotency-key-in-use` and 422
    `idempotency-key-reused`.
    """
    with in_flight.claim(client_id, request.key):
        stored = await asyncio.to_thread(_lookup, runtime, client_id, request.key)
        if stored is not None and stored.expires_at > clock():
            return _replay(stored, request)
        expired = stored is not None

        def transaction(uow: UnitOfWork) -> StoredResponse:
            # No second lookup here: a process that stored the key since ours makes our
            # insert hit the primary key, and we replay its response below.
            now = clock()
            if expired:
                delete_expired(uow.session, client_id, request.key, now)
            rendered = render(work(uow))
            response = StoredResponse(
                request.fingerprint,
                rendered.status,
                rendered.body,
                rendered.location,
                now + ttl,
            )
            if 200 <= rendered.status < 300:
                store_response(uow.session, client_id, request.key, response, now)
            return response

        try:
            response = await runtime.committer.submit(transaction)
        except IntegrityError:
            # A racing process committed the key first: its effect stands, ours is rolled back.
            stored = await asyncio.to_thread(_lookup, runtime, client_id, request.key)
            if stored is None or stored.expires_at <= clock():
                raise _in_use(request.key) from None
            return _replay(stored, request)
        return _response(response)


def _lookup(runtime: Runtime, client_id: str, key: str) -> StoredResponse | None:
    with runtime.read_session_factory() as session:
        return find_response(session, client_id, key)


def _replay(stored: StoredResponse, request: IdempotentRequest) -> JSONResponse:
    if stored.fingerprint != request.fingerprint:
        raise ProblemError(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused for another request",
            f"the Idempotency-Key {request.key!r} was used for a different request; use a "
            "new key for a new operation",
        )
    response = _response(stored)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _response(stored: StoredResponse) -> JSONResponse:
    response = JSONResponse(stored.body, status_code=stored.status)
    if stored.location is not None:
        response.headers["Location"] = stored.location
    return response


def _in_use(key: str) -> ProblemError:
    return ProblemError(
        409,
        "idempotency-key-in-use",
        "Idempotency-Key in use",
        f"a request with the Idempotency-Key {key!r} is still being processed; retry later",
    )


def _sf_string(value: str) -> str | None:
    """An RFC 8941 String (`"a\\"b"` -> `a"b`), or None if it is malformed."""
    if len(value) < 2 or not value.endswith('"'):
        return None
    chars: list[str] = []
    inner = iter(value[1:-1])
    for char in inner:
        if char == "\\":
            escaped = next(inner, None)
            if escaped is None or escaped not in ('"', "\\"):
                return None
            chars.append(escaped)
        elif char == '"':
            return None
        else:
            chars.append(char)
    return "".join(chars)


def _printable_ascii(key: str) -> bool:
    return all(" " <= char <= "~" for char in key)
