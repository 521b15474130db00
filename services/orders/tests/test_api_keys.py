"""API keys: format and hashing (pure), and the store and its cache on every database."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from orders.adapters.api_key_store import (
    ApiKeyAuthenticator,
    CreatedKey,
    KeyRejectedError,
    Rejection,
    authenticate,
    create_key,
    list_keys,
    revoke_key,
)
from orders.adapters.tables import ApiClient
from orders.domain.api_keys import (
    ALL_SCOPES,
    MalformedKeyError,
    PresentedKey,
    Scope,
    checked_client_id,
    checked_name,
    checked_scopes,
    generate_key,
    hash_secret,
    parse_key,
    secret_matches,
)
from orders.testing import ManualClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=5)


# --- the key format, pure ---------------------------------------------------------------


def test_a_generated_key_parses_back_into_its_id_and_secret() -> None:
    issued = generate_key()
    presented = parse_key(issued.token)
    assert (presented.key_id, presented.secret) == (issued.key_id, issued.secret)
    assert issued.token == f"opk_{issued.key_id}_{issued.secret}"


def test_a_key_id_is_12_lowercase_hex_digits_and_a_secret_32_random_bytes() -> None:
    keys = [generate_key() for _ in range(50)]
    for key in keys:
        assert len(key.key_id) == 12
        assert set(key.key_id) <= set("0123456789abcdef")
        assert len(base64.urlsafe_b64decode(key.secret + "=")) == 32
    assert len({key.key_id for key in keys}) == len({key.secret for key in keys}) == 50


@pytest.mark.parametrize(
    "text",
    [
        "",
        "opk_",
        "garbage",
        "Bearer opk_0123456789ab_" + "a" * 43,
        "opk_0123456789AB_" + "a" * 43,  # upper-case key id
        "opk_0123456789a_" + "a" * 43,  # 11 digits
        "opk_0123456789ab_" + "a" * 42,  # secret too short
        "opk_0123456789ab_" + "a" * 129,  # secret too long
        "opk_0123456789ab_" + "a" * 42 + "=",  # not URL-safe base64
        "opk_0123456789ab" + "a" * 44,  # no separator
        "xpk_0123456789ab_" + "a" * 43,
        " opk_0123456789ab_" + "a" * 43,
        "opk_0123456789ab_" + "a" * 43 + "\n",
    ],
)
def test_anything_but_a_well_formed_key_is_malformed(text: str) -> None:
    with pytest.raises(MalformedKeyError) as error:
        parse_key(text)
    assert "a" * 20 not in str(error.value)  # the presented text is never echoed


def test_secrets_may_contain_the_separator_and_dashes() -> None:
    secret = "ab_cd-" + "x" * 40
    assert parse_key(f"opk_0123456789ab_{secret}").secret == secret


def test_the_stored_hash_is_the_sha256_of_the_secret_and_matches_only_it() -> None:
    issued = generate_key()
    assert issued.secret_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert secret_matches(issued.secret, issued.secret_hash)
    last = "B" if issued.secret.endswith("A") else "A"
    assert not secret_matches(issued.secret[:-1] + last, issued.secret_hash)
    assert not secret_matches(issued.secret, hash_secret("other"))


def test_representations_never_show_a_secret() -> None:
    issued = generate_key()
    presented = parse_key(issued.token)
    for shown in (repr(issued), repr(presented), str(issued), str(presented)):
        assert issued.secret not in shown
        assert issued.key_id in shown


def test_scopes_are_checked_sorted_and_deduplicated() -> None:
    assert checked_scopes(["orders:write", "orders:read", "orders:write"]) == (
        Scope.READ,
        Scope.WRITE,
    )
    assert checked_scopes([Scope.READ]) == (Scope.READ,)
    with pytest.raises(ValueError, match="unknown scope orders:delete"):
        checked_scopes(["orders:read", "orders:delete"])
    with pytest.raises(ValueError, match="at least one scope"):
        checked_scopes([])


@pytest.mark.parametrize("client_id", ["", "-shop", "shop one", "x" * 65, "shop/1", "shöp"])
def test_client_ids_are_short_plain_names(client_id: str) -> None:
    with pytest.raises(ValueError, match="client id"):
        checked_client_id(client_id)


def test_a_client_id_may_have_dots_dashes_and_underscores() -> None:
    assert checked_client_id("web-shop_eu.1") == "web-shop_eu.1"


def test_key_names_are_trimmed_and_bounded() -> None:
    assert checked_name("  web shop  ") == "web shop"
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(ValueError, match="key name"):
            checked_name(bad)


# --- the store, on every database (`sessions`: see conftest.py) ----------------------------


def add_key(
    sessions: sessionmaker[Session],
    client_id: str = "shop-1",
    scopes: tuple[str, ...] = ALL_SCOPES,
    now: datetime = T0,
) -> CreatedKey:
    with sessions.begin() as session:
        return create_key(session, client_id, "web shop", scopes, now)


def revoke(sessions: sessionmaker[Session], key_id: str, now: datetime = T0) -> None:
    with sessions.begin() as session:
        assert revoke_key(session, key_id, now) is not None


def check(sessions: sessionmaker[Session], token: str) -> object:
    with sessions() as session:
        return authenticate(session, parse_key(token))


def rejection(sessions: sessionmaker[Session], token: str) -> Rejection:
    with pytest.raises(KeyRejectedError) as error:
        check(sessions, token)
    return error.value.reason


@pytest.fixture
def key(sessions: sessionmaker[Session]) -> CreatedKey:
    """A key of shop-1, in the database."""
    return add_key(sessions)


def test_a_created_key_authenticates_as_its_client_with_its_scopes(
    sessions: sessionmaker[Session],
) -> None:
    created = add_key(sessions, "shop-1", ("orders:read",))
    with sessions() as session:
        info = authenticate(session, parse_key(created.token))
    assert (info.key_id, info.client_id, info.scopes) == (
        created.info.key_id,
        "shop-1",
        (Scope.READ,),
    )
    assert info.created_at == T0
    assert not info.revoked


def test_the_database_holds_only_the_hash_of_the_secret(sessions: sessionmaker[Session]) -> None:
    created = add_key(sessions)
    secret = parse_key(created.token).secret
    with sessions() as session:
        row = session.execute(select(ApiClient.__table__)).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in row)


def its_own_token(key: CreatedKey) -> str:
    return key.token


def another_secret(key: CreatedKey) -> str:
    return f"opk_{key.info.key_id}_{generate_key().secret}"


def another_key_id(key: CreatedKey) -> str:
    return generate_key().token


@pytest.mark.parametrize(
    ("revoked", "presented_token", "reason"),
    [
        pytest.param(False, another_secret, Rejection.WRONG_SECRET, id="wrong-secret"),
        pytest.param(False, another_key_id, Rejection.UNKNOWN_KEY, id="unknown-key-id"),
        pytest.param(True, its_own_token, Rejection.REVOKED, id="revoked"),
        # The secret is checked first: a wrong one never learns that the key was revoked.
        pytest.param(True, another_secret, Rejection.WRONG_SECRET, id="revoked-wrong-secret"),
    ],
)
def test_a_key_is_rejected_with_its_reason(
    sessions: sessionmaker[Session],
    key: CreatedKey,
    revoked: bool,
    presented_token: Callable[[CreatedKey], str],
    reason: Rejection,
) -> None:
    if revoked:
        revoke(sessions, key.info.key_id)
    assert rejection(sessions, presented_token(key)) is reason


def test_revoking_again_keeps_the_first_revocation_and_unknown_keys_are_none(
    sessions: sessionmaker[Session],
) -> None:
    created = add_key(sessions)
    later = T0 + timedelta(hours=1)
    with sessions.begin() as session:
        first = revoke_key(session, created.info.key_id, T0)
    with sessions.begin() as session:
        second = revoke_key(session, created.info.key_id, later)
        unknown = revoke_key(session, "0123456789ab", later)
    assert first is not None
    assert not first.already_revoked
    assert second is not None
    assert second.already_revoked
    assert second.info.revoked_at == T0
    assert unknown is None


def test_listing_shows_every_key_of_a_client_oldest_first_revoked_included(
    sessions: sessionmaker[Session],
) -> None:
    first = add_key(sessions, "shop-1", now=T0)
    other = add_key(sessions, "shop-2", now=T0 + timedelta(minutes=1))
    second = add_key(sessions, "shop-1", ("orders:read",), now=T0 + timedelta(minutes=2))
    revoke(sessions, first.info.key_id, T0 + timedelta(minutes=3))
    with sessions() as session:
        everyone = list_keys(session)
        shop_1 = list_keys(session, "shop-1")
        nobody = list_keys(session, "shop-3")
    assert [k.key_id for k in everyone] == [
        first.info.key_id,
        other.info.key_id,
        second.info.key_id,
    ]
    assert [(k.key_id, k.revoked) for k in shop_1] == [
        (first.info.key_id, True),
        (second.info.key_id, False),
    ]
    assert nobody == []


def test_invalid_keys_are_not_created(sessions: sessionmaker[Session]) -> None:
    for client_id, scopes in (("shop 1", ALL_SCOPES), ("shop-1", ("orders:admin",))):
        with pytest.raises(ValueError, match=r"client id|scope"), sessions.begin() as session:
            create_key(session, client_id, "web shop", scopes, T0)
    with sessions() as session:
        assert list_keys(session) == []


# --- the authenticator's cache --------------------------------------------------------------


class CountingSessions:
    """The read sessions the authenticator opens, counted."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.opened = 0

    def __call__(self) -> Session:
        self.opened += 1
        return self.sessions()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def reads(sessions: sessionmaker[Session]) -> CountingSessions:
    return CountingSessions(sessions)


@pytest.fixture
def authenticator(reads: CountingSessions, clock: ManualClock) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(reads, TTL, clock=clock)


@pytest.fixture
def presented(key: CreatedKey) -> PresentedKey:
    """`key`, as a request presents it."""
    return parse_key(key.token)


def test_a_key_is_read_from_the_database_once_per_ttl(
    key: CreatedKey,
    presented: PresentedKey,
    reads: CountingSessions,
    clock: ManualClock,
    authenticator: ApiKeyAuthenticator,
) -> None:
    assert authenticator.from_cache(presented) is None
    for _ in range(3):
        assert authenticator.authenticate(presented).client_id == "shop-1"
        clock.now += 1
    assert authenticator.from_cache(presented) == key.info
    assert reads.opened == 1
    clock.now += TTL.total_seconds()
    assert authenticator.from_cache(presented) is None
    authenticator.authenticate(presented)
    assert reads.opened == 2


def test_a_revocation_takes_effect_once_the_ttl_has_passed(
    sessions: sessionmaker[Session],
    key: CreatedKey,
    presented: PresentedKey,
    clock: ManualClock,
    authenticator: ApiKeyAuthenticator,
) -> None:
    authenticator.authenticate(presented)
    revoke(sessions, key.info.key_id)
    clock.now += TTL.total_seconds() - 0.001
    assert authenticator.authenticate(presented).key_id == key.info.key_id  # still cached
    clock.now += 0.001
    with pytest.raises(KeyRejectedError) as error:
        authenticator.authenticate(presented)
    assert error.value.reason is Rejection.REVOKED


def test_forgetting_a_key_makes_its_revocation_immediate(
    sessions: sessionmaker[Session],
    key: CreatedKey,
    presented: PresentedKey,
    authenticator: ApiKeyAuthenticator,
) -> None:
    authenticator.authenticate(presented)
    revoke(sessions, key.info.key_id)
    authenticator.forget(key.info.key_id)
    with pytest.raises(KeyRejectedError):
        authenticator.authenticate(presented)


def test_a_cached_key_still_needs_its_secret(
    key: CreatedKey,
    presented: PresentedKey,
    reads: CountingSessions,
    authenticator: ApiKeyAuthenticator,
) -> None:
    authenticator.authenticate(presented)
    wrong = PresentedKey(key.info.key_id, generate_key().secret)
    with pytest.raises(KeyRejectedError) as error:
        authenticator.from_cache(wrong)
    assert error.value.reason is Rejection.WRONG_SECRET
    with pytest.raises(KeyRejectedError):
        authenticator.authenticate(wrong)
    assert reads.opened == 1


def test_a_revoked_key_is_remembered_as_revoked(
    sessions: sessionmaker[Session],
    key: CreatedKey,
    presented: PresentedKey,
    reads: CountingSessions,
    authenticator: ApiKeyAuthenticator,
) -> None:
    revoke(sessions, key.info.key_id)
    for _ in range(3):
        with pytest.raises(KeyRejectedError):
            authenticator.authenticate(presented)
    assert reads.opened == 1


def test_unknown_keys_are_not_remembered_so_a_new_key_works_at_once(
    sessions: sessionmaker[Session], reads: CountingSessions, authenticator: ApiKeyAuthenticator
) -> None:
    unknown = parse_key(generate_key().token)
    for _ in range(2):
        with pytest.raises(KeyRejectedError) as error:
            authenticator.authenticate(unknown)
        assert error.value.reason is Rejection.UNKNOWN_KEY
    assert reads.opened == 2
    created = add_key(sessions)
    assert authenticator.authenticate(parse_key(created.token)).client_id == "shop-1"


def test_the_cache_is_bounded_and_drops_its_oldest_entries(
    sessions: sessionmaker[Session], reads: CountingSessions, clock: ManualClock
) -> None:
    authenticator = ApiKeyAuthenticator(reads, TTL, clock=clock, max_entries=2)
    first, second, third = (parse_key(add_key(sessions).token) for _ in range(3))
    for presented in (first, second, third):
        authenticator.authenticate(presented)
        clock.now += 0.1
    assert authenticator.from_cache(first) is None
    assert authenticator.from_cache(second) is not None
    assert authenticator.from_cache(third) is not None
