"""Who is calling: API keys in `Authorization: Bearer <key>`, and the scopes they carry.

    @router.post("/orders")
    async def create_order(caller: WriteCaller, ...) -> OrderOut: ...

A missing, malformed, unknown or revoked key is a 401 `unauthenticated` (with
`WWW-Authenticate: Bearer`); a valid key without the endpoint's scope a 403
`insufficient-scope`. Responses never echo the key, nor tell an unknown key from a revoked
one or a wrong secret (the log does, by key id).

Keys are cached in-process for a few seconds (`OrdersSettings.api_key_cache_ttl` if set,
else `DEFAULT_CACHE_TTL`): a revoked key keeps working in a running gateway for up to
that long after `keys revoke`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kit.api import get_runtime
from kit.problems import ProblemError
from orders.adapters.api_key_store import ApiKeyAuthenticator, ApiKeyInfo, KeyRejectedError
from orders.domain.api_keys import MalformedKeyError, Scope, parse_key

log = logging.getLogger(__name__)

DEFAULT_CACHE_TTL = timedelta(seconds=5)
_STATE_ATTRIBUTE = "api_key_authenticator"

# Declares the scheme in the OpenAPI document; the checks themselves are ours, so that
# every failure is a problem+json 401 (HTTPBearer's own errors are plain 403s).
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="opk_<key id>_<secret>",
    description="An API key of your storefront client, created with `keys create`.",
)

PROBLEM_CONTENT = {"application/problem+json": {"schema": {"type": "object"}}}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Missing, malformed, unknown or revoked API key",
        "content": PROBLEM_CONTENT,
    },
    403: {"description": "The API key lacks the endpoint's scope", "content": PROBLEM_CONTENT},
}
"""For a route's `responses=`, so the OpenAPI document lists what auth may answer."""


class ChallengeError(ProblemError):
    """A 401/403 problem with its `WWW-Authenticate` challenge (RFC 6750)."""

    def __init__(
        self, status: int, kind: str, title: str, detail: str, *, challenge: str, **extensions: Any
    ) -> None:
        headers = {"WWW-Authenticate": challenge}
        super().__init__(status, kind, title, detail, headers=headers, **extensions)


@dataclass(frozen=True)
class Caller:
    """The authenticated storefront client behind a request."""

    client_id: str
    key_id: str
    scopes: frozenset[Scope]

    def owns(self, resource: Owned) -> bool:
        """Whether `resource` (e.g. an Order) belongs to this client. The routes answer a
        404 for another client's order, exactly as for one that does not exist."""
        return resource.client_id == self.client_id


class Owned(Protocol):
    @property
    def client_id(self) -> str: ...


def install_api_key_authenticator(app: FastAPI, authenticator: ApiKeyAuthenticator) -> None:
    """Uses `authenticator` instead of the one built on the first request (tests, tuning)."""
    setattr(app.state, _STATE_ATTRIBUTE, authenticator)


def require_scope(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if its key is valid and carries `scope`."""
    required = Scope(scope)  # an unknown scope fails at import, not on a request

    async def authorized_caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Caller:
        caller = await _authenticate(request, credentials)
        if required not in caller.scopes:
            raise ChallengeError(
                403,
                "insufficient-scope",
                "The API key lacks a required scope",
                f"this endpoint needs an API key with the scope {required}",
                challenge=f'Bearer error="insufficient_scope", scope="{required}"',
                required_scope=str(required),
            )
        return caller

    return authorized_caller


ReadCaller = Annotated[Caller, Depends(require_scope(Scope.READ))]
WriteCaller = Annotated[Caller, Depends(require_scope(Scope.WRITE))]


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Caller:
    if credentials is None:
        raise _unauthenticated("send an API key: Authorization: Bearer <key>", challenge="Bearer")
    try:
        presented = parse_key(credentials.credentials)
    except MalformedKeyError as error:
        raise _unauthenticated("the API key is malformed") from error
    authenticator = _authenticator(request)
    try:
        # A cache hit is answered on the event loop; only a miss needs a worker thread.
        info = authenticator.from_cache(presented)
        if info is None:
            info = await asyncio.to_thread(authenticator.authenticate, presented)
    except KeyRejectedError as error:
        log.info("API key %s rejected: %s", error.key_id, error.reason)
        raise _unauthenticated("the API key is not valid") from error
    return _caller(info)


def _caller(info: ApiKeyInfo) -> Caller:
    return Caller(client_id=info.client_id, key_id=info.key_id, scopes=frozenset(info.scopes))


def _authenticator(request: Request) -> ApiKeyAuthenticator:
    state = request.app.state
    authenticator: ApiKeyAuthenticator | None = getattr(state, _STATE_ATTRIBUTE, None)
    if authenticator is None:  # first request; on the event loop, so built only once
        runtime = get_runtime(request)
        ttl = getattr(runtime.settings, "api_key_cache_ttl", DEFAULT_CACHE_TTL)
        authenticator = ApiKeyAuthenticator(runtime.read_session_factory, ttl)
        install_api_key_authenticator(request.app, authenticator)
    return authenticator


def _unauthenticated(detail: str, challenge: str = 'Bearer error="invalid_token"') -> ProblemError:
    # RFC 6750: a bare challenge when no credentials came, `invalid_token` for bad ones.
    return ChallengeError(
        401, "unauthenticated", "Authentication required", detail, challenge=challenge
    )
