"""API keys of storefront clients: their format, generation, hashing and scopes. No I/O.

A key reads `opk_<key_id>_<secret>`. The key id (12 lowercase hex digits) is public: it
names the key in listings and logs and is how the key is looked up. The secret (32 random
bytes, URL-safe base64) is shown once at creation; only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "opk_"
KEY_ID_HEX_DIGITS = 12
SECRET_BYTES = 32

# token_urlsafe(32) gives 43 characters; a little slack for longer secrets, but a bound,
# so a garbage header is refused before anything hashes it.
_KEY_PATTERN = re.compile(r"opk_([0-9a-f]{12})_([A-Za-z0-9_-]{43,128})")
_CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_NAME_LENGTH = 200


class Scope(StrEnum):
    READ = "orders:read"  # the GET endpoints
    WRITE = "orders:write"  # the POST endpoints


ALL_SCOPES: tuple[Scope, ...] = tuple(Scope)


class MalformedKeyError(ValueError):
    """What was presented is not an API key at all (never includes the presented text)."""


@dataclass(frozen=True)
class PresentedKey:
    """A key as a caller presented it, split into its parts. `repr` hides the secret."""

    key_id: str
    secret: str

    def __repr__(self) -> str:
        return f"PresentedKey(key_id={self.key_id!r}, secret=<hidden>)"


@dataclass(frozen=True)
class IssuedKey:
    """A freshly generated key: the full text goes to the client once, the hash is stored."""

    key_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{KEY_PREFIX}{self.key_id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.key_id!r}, secret=<hidden>)"


def generate_key() -> IssuedKey:
    return IssuedKey(
        key_id=secrets.token_hex(KEY_ID_HEX_DIGITS // 2),
        secret=secrets.token_urlsafe(SECRET_BYTES),
    )


def parse_key(text: str) -> PresentedKey:
    match = _KEY_PATTERN.fullmatch(text)
    if match is None:
        raise MalformedKeyError("not an API key of the form opk_<key id>_<secret>")
    return PresentedKey(key_id=match[1], secret=match[2])


def hash_secret(secret: str) -> str:
    # A plain SHA-256, not bcrypt/argon2: slow hashes protect guessable passwords, but a
    # secret of 256 random bits cannot be brute-forced whatever the hash speed, while a slow
    # hash would cost ~100 ms of CPU on every request (cache misses) at 1000 requests/s.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    # Constant time: how long the comparison takes says nothing about how much matched.
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def checked_scopes(scopes: Iterable[str]) -> tuple[Scope, ...]:
    """The scopes as a sorted, duplicate-free tuple; unknown or no scopes are refused."""
    unknown = sorted({s for s in scopes if s not in ALL_SCOPES})
    if unknown:
        known = ", ".join(ALL_SCOPES)
        raise ValueError(f"unknown scope {', '.join(unknown)} (known: {known})")
    chosen = tuple(sorted({Scope(s) for s in scopes}))
    if not chosen:
        raise ValueError("a key needs at least one scope")
    return chosen


def checked_client_id(client_id: str) -> str:
    if _CLIENT_ID_PATTERN.fullmatch(client_id) is None:
        raise ValueError(
            "a client id is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return client_id


def checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a key name is 1-{MAX_NAME_LENGTH} characters")
    return name
