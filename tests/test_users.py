"""User resolution: database_user, token_user/TokenUser, canonical ids, custom resolvers."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models
from django.test.utils import CaptureQueriesContext

from channels_jwt import (
    JWTAuthMiddleware,
    TokenInvalid,
    UserRejected,
)
from channels_jwt.conf import Config, Settings
from channels_jwt.users import (
    INTEGER_FIELDS,
    TokenUser,
    UserCache,
    batched,
    bound_resolver,
    canonical_user_id,
    database_user,
    token_user,
)
from tests.harness import (
    Keys,
    RecordingApp,
    claims_for,
    close_message,
    crashing_resolver,
    finding_nobody,
    hs_token,
    open_connection,
    rejection,
    token_for,
    user_pk_range,
)
from tests.jwks_server import (
    JWKSServer,
    handshake,
    idp_app,
    idp_token,
    public_jwk,
)

User = get_user_model()


def configure(settings: Any, **keys: Any) -> None:
    """Add ``keys`` to the project's ``CHANNELS_JWT``."""
    settings.CHANNELS_JWT = {**settings.CHANNELS_JWT, **keys}


def resolve(resolver: Any, claims: dict[str, Any]) -> Any:
    """Run an async resolver from a sync test: its queries then run on this thread.

    ``database_sync_to_async`` closes obsolete connections (``CONN_MAX_AGE=0``) around each
    call, so a test whose lookup reaches the database needs ``transactional_db``: inside the
    ``db`` fixture's transaction that close ends the test's own connection on PostgreSQL
    (SQLite ignores closing an in-memory database, which hides it there).
    """
    return async_to_sync(resolver)(claims, {"type": "websocket"})


def resolve_unchecked(claims: dict[str, Any]) -> Any:
    """:func:`resolve` with ``database_user`` bound to settings the rules were not applied to.

    What the resolver does on its own when a configuration the system checks refuse (a
    non-unique or relation ``USER_ID_FIELD``) reaches it anyway.
    """
    config = Config.from_settings(Settings())
    return resolve(bound_resolver(database_user, config), claims)


# database_user


def test_database_user_is_one_query(user: Any) -> None:
    with CaptureQueriesContext(connection) as queries:
        found = resolve(database_user, {"user_id": str(user.pk)})
    assert found == user
    assert len(queries) == 1


def test_database_user_accepts_an_integer_claim(user: Any) -> None:
    assert resolve(database_user, {"user_id": user.pk}) == user


def test_database_user_rejects_an_inactive_user(inactive_user: Any) -> None:
    with pytest.raises(UserRejected) as raised:
        resolve(database_user, {"user_id": str(inactive_user.pk)})
    assert str(raised.value) == "user not found or inactive"


def test_database_user_rejects_an_unknown_user(user: Any) -> None:
    with pytest.raises(UserRejected) as raised:
        resolve(database_user, {"user_id": str(user.pk + 1000)})
    assert str(raised.value) == "user not found or inactive"


def test_database_user_rejects_an_id_beyond_the_pk_column_as_unknown(user: Any) -> None:
    # canonical_user_id admits any 64-bit id. auth_user.id is a 32-bit ``integer`` column on
    # PostgreSQL, and Django answers an id beyond it with no rows and no query (never a
    # DataError, which would be 4503); SQLite's integers are all 64-bit, so it asks.
    beyond = 2**31
    _, high = user_pk_range()
    assert (connection.vendor, high) in {("sqlite", 2**63 - 1), ("postgresql", 2**31 - 1)}
    with CaptureQueriesContext(connection) as queries, pytest.raises(UserRejected):
        resolve(database_user, {"user_id": str(beyond)})
    assert len(queries) == (0 if beyond > high else 1)


def test_database_user_rejects_a_bad_id_without_a_query(user: Any) -> None:
    with CaptureQueriesContext(connection) as queries, pytest.raises(TokenInvalid):
        resolve(database_user, {"user_id": "1 OR 1=1"})
    assert len(queries) == 0


def test_database_user_rejects_a_missing_id_claim(user: Any) -> None:
    with pytest.raises(TokenInvalid):
        resolve(database_user, {"sub": str(user.pk)})


def test_database_user_by_username(user: Any, settings: Any) -> None:
    configure(settings, USER_ID_FIELD="username")
    with CaptureQueriesContext(connection) as queries:
        found = resolve(database_user, {"user_id": "alice"})
    assert found == user
    assert len(queries) == 1


def test_database_user_by_username_is_exact(user: Any, settings: Any) -> None:
    configure(settings, USER_ID_FIELD="username")
    with pytest.raises(UserRejected):
        resolve(database_user, {"user_id": "ALICE"})


def test_database_user_by_a_custom_claim(user: Any, settings: Any) -> None:
    configure(settings, USER_ID_CLAIM="sub")
    assert resolve(database_user, {"sub": str(user.pk)}) == user


def test_database_user_rejects_a_non_unique_match(settings: Any, transactional_db: None) -> None:
    # A non-unique USER_ID_FIELD (a misconfiguration) must not pick one of the users.
    User.objects.create(username="sam1", first_name="Sam")
    User.objects.create(username="sam2", first_name="Sam")
    configure(settings, USER_ID_FIELD="first_name")
    with pytest.raises(UserRejected):
        resolve_unchecked({"user_id": "Sam"})


def test_database_user_by_a_non_unique_field_with_one_match(
    settings: Any, transactional_db: None
) -> None:
    sam = User.objects.create(username="sam1", first_name="Sam")
    configure(settings, USER_ID_FIELD="first_name")
    assert resolve_unchecked({"user_id": "Sam"}) == sam


def resolve_together(resolver: Any, ids: list[Any]) -> list[Any]:
    """Resolve every id at once, in one event loop: each user, or the exception it raised."""

    async def together() -> list[Any]:
        lookups = [resolver({"user_id": user_id}, {"type": "websocket"}) for user_id in ids]
        return await asyncio.gather(*lookups, return_exceptions=True)

    return async_to_sync(together)()


def test_concurrent_lookups_share_a_query_and_keep_each_answer(
    user: Any, inactive_user: Any, transactional_db: None
) -> None:
    others = User.objects.bulk_create(User(username=f"storm{n}") for n in range(20))
    ids = [user.pk, inactive_user.pk, "1 OR 1=1", 2**40, *(other.pk for other in others)]
    with CaptureQueriesContext(connection) as queries:
        answers = resolve_together(database_user, ids)

    assert answers[0] == user
    assert [type(answer) for answer in answers[1:4]] == [UserRejected, TokenInvalid, UserRejected]
    assert str(answers[1]) == str(answers[3]) == "user not found or inactive"
    assert answers[4:] == others
    # The first at once, alone; the others, asked while it ran, in one IN (...) query.
    assert len(queries) == 2


def test_a_storm_of_lookups_is_queried_in_chunks(transactional_db: None) -> None:
    users = User.objects.bulk_create(User(username=f"storm{n}") for n in range(1201))
    with CaptureQueriesContext(connection) as queries:
        answers = resolve_together(database_user, [found.pk for found in users])
    assert answers == users
    assert len(queries) == 1 + 3  # the first alone, then 1,200 ids in chunks of 500


def test_concurrent_lookups_by_a_non_unique_field_still_refuse_a_shared_value(
    settings: Any, transactional_db: None
) -> None:
    User.objects.create(username="sam1", first_name="Sam")
    User.objects.create(username="sam2", first_name="Sam")
    kim = User.objects.create(username="kim", first_name="Kim")
    configure(settings, USER_ID_FIELD="first_name")
    config = Config.from_settings(Settings())
    answers = resolve_together(bound_resolver(database_user, config), ["Kim", "Sam", "Kim"])
    assert [answers[0], type(answers[1]), answers[2]] == [kim, UserRejected, kim]


def test_a_batched_resolver_loads_each_batch_in_one_call(
    user: Any, inactive_user: Any, transactional_db: None
) -> None:
    calls: list[list[Any]] = []

    def load_users(user_ids: list[Any]) -> dict[Any, Any]:
        calls.append(user_ids)
        return User.objects.in_bulk(user_ids)

    resolver = batched(load_users)
    answers = resolve_together(resolver, [str(user.pk), inactive_user.pk, 10**6, True])

    assert answers[0] == user
    assert [type(answer) for answer in answers[1:]] == [UserRejected, UserRejected, TokenInvalid]
    assert calls == [[user.pk], [inactive_user.pk, 10**6]]  # canonical ids; then one batch

    def failing(user_ids: list[Any]) -> dict[Any, Any]:
        raise ConnectionError("the directory is down")

    failures = resolve_together(batched(failing), [user.pk, inactive_user.pk])
    assert [type(failure) for failure in failures] == [ConnectionError, ConnectionError]


def test_user_id_field_naming_a_relation_is_a_configuration_error(settings: Any, db: None) -> None:
    # No installed user model has a reverse relation; Permission (reverse "group", from
    # Group.permissions) stands in for a user model whose USER_ID_FIELD names one.
    settings.AUTH_USER_MODEL = "auth.Permission"
    configure(settings, USER_ID_FIELD="group")
    with pytest.raises(ImproperlyConfigured) as raised:
        resolve_unchecked({"user_id": "1"})
    assert str(raised.value) == "USER_ID_FIELD 'group' is a relation, not a field"
    # Called directly, the built-in refuses the configuration the system checks refuse.
    with pytest.raises(ImproperlyConfigured, match=r"^channels_jwt\.E021: "):
        resolve(database_user, {"user_id": "1"})


# USER_CACHE_SECONDS


def test_user_cache_serves_the_second_lookup_without_a_query(user: Any, settings: Any) -> None:
    configure(settings, USER_CACHE_SECONDS=60)
    first = resolve(database_user, {"user_id": str(user.pk)})
    with CaptureQueriesContext(connection) as queries:
        second = resolve(database_user, {"user_id": str(user.pk)})
    assert len(queries) == 0
    assert second == first == user


def test_user_cache_returns_a_copy(user: Any, settings: Any) -> None:
    configure(settings, USER_CACHE_SECONDS=60)
    first = resolve(database_user, {"user_id": str(user.pk)})
    second = resolve(database_user, {"user_id": str(user.pk)})
    second.first_name = "Mallory"
    third = resolve(database_user, {"user_id": str(user.pk)})
    assert first is not second
    assert second is not third
    assert third.first_name == ""


def test_user_cache_entries_expire(user: Any, settings: Any) -> None:
    configure(settings, USER_CACHE_SECONDS=0.05)
    resolve(database_user, {"user_id": str(user.pk)})
    time.sleep(0.06)
    with CaptureQueriesContext(connection) as queries:
        resolve(database_user, {"user_id": str(user.pk)})
    assert len(queries) == 1


def test_user_cache_does_not_keep_rejections(inactive_user: Any, settings: Any) -> None:
    configure(settings, USER_CACHE_SECONDS=60)
    with pytest.raises(UserRejected):
        resolve(database_user, {"user_id": str(inactive_user.pk)})
    with CaptureQueriesContext(connection) as queries, pytest.raises(UserRejected):
        resolve(database_user, {"user_id": str(inactive_user.pk)})
    assert len(queries) == 1


def test_user_cache_is_off_by_default(user: Any) -> None:
    resolve(database_user, {"user_id": str(user.pk)})
    with CaptureQueriesContext(connection) as queries:
        resolve(database_user, {"user_id": str(user.pk)})
    assert len(queries) == 1


def test_user_cache_is_dropped_when_settings_change(user: Any, settings: Any) -> None:
    configure(settings, USER_CACHE_SECONDS=60)
    resolve(database_user, {"user_id": str(user.pk)})
    configure(settings, USER_CACHE_SECONDS=30)
    with CaptureQueriesContext(connection) as queries:
        resolve(database_user, {"user_id": str(user.pk)})
    assert len(queries) == 1


def test_user_cache_evicts_the_oldest_entry() -> None:
    cache = UserCache(60, max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(("auth.user", "id", key), key)
    assert cache.get(("auth.user", "id", "a")) is None
    assert cache.get(("auth.user", "id", "b")) == "b"
    assert cache.get(("auth.user", "id", "c")) == "c"


def test_user_cache_put_refreshes_an_entry() -> None:
    cache = UserCache(60, max_entries=2)
    cache.put(("auth.user", "id", "a"), "a")
    cache.put(("auth.user", "id", "b"), "b")
    cache.put(("auth.user", "id", "a"), "a2")
    cache.put(("auth.user", "id", "c"), "c")
    assert cache.get(("auth.user", "id", "a")) == "a2"
    assert cache.get(("auth.user", "id", "b")) is None


def test_user_cache_entry_is_stale_once_its_time_has_passed() -> None:
    cache = UserCache(0)
    cache.put(("auth.user", "id", 1), "alice")
    assert cache.get(("auth.user", "id", 1)) is None


def test_user_cache_miss() -> None:
    assert UserCache(60).get(("auth.user", "id", 1)) is None


# token_user / TokenUser


def test_token_user_makes_no_query(db: None) -> None:
    with CaptureQueriesContext(connection) as queries:
        found = resolve(token_user, claims_for(42))
    assert isinstance(found, TokenUser)
    assert len(queries) == 0


def test_token_user_pk_is_typed_like_the_user_model_pk() -> None:
    assert User._meta.pk.get_internal_type() in INTEGER_FIELDS
    found = resolve(token_user, claims_for("42"))
    assert (found.pk, found.id) == (42, 42)
    assert type(found.pk) is int


def test_token_user_pk_for_a_big_auto_field() -> None:
    big = models.BigAutoField(primary_key=True)
    assert canonical_user_id(str(2**62), big) == 2**62


def test_token_user_rejects_a_bad_id() -> None:
    with pytest.raises(TokenInvalid):
        resolve(token_user, claims_for("01"))


def test_token_user_reads_username_and_staff_from_claims() -> None:
    found = resolve(token_user, claims_for(1, username="carol", is_staff=True, is_superuser=True))
    assert (found.username, found.get_username()) == ("carol", "carol")
    assert (found.is_staff, found.is_superuser) == (True, True)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({}, id="absent"),
        pytest.param({"username": 5, "is_staff": "true", "is_superuser": 1}, id="wrong-types"),
    ],
)
def test_token_user_defaults_without_proper_claims(claims: dict[str, Any]) -> None:
    found = TokenUser(1, claims)
    assert (found.username, found.is_staff, found.is_superuser) == ("", False, False)


def test_token_user_flags() -> None:
    found = TokenUser(1, {})
    assert (found.is_active, found.is_authenticated, found.is_anonymous) == (True, True, False)


def test_token_user_keeps_the_claims_read_only() -> None:
    claims = claims_for(1)
    found = TokenUser(1, claims)
    assert found.claims == claims
    with pytest.raises(TypeError):
        found.claims["user_id"] = "2"  # type: ignore[index]


def test_token_user_equality() -> None:
    assert TokenUser(1, {"username": "a"}) == TokenUser(1, {"username": "b"})
    assert TokenUser(1, {}) != TokenUser(2, {})
    assert TokenUser(1, {}) != 1
    assert hash(TokenUser(1, {})) == hash(TokenUser(1, {"x": 1}))


def test_token_user_has_no_permissions() -> None:
    found = TokenUser(1, {"is_superuser": True})
    assert found.has_perm("auth.view_user") is False
    assert found.has_perms(["auth.view_user"]) is False
    assert found.has_module_perms("auth") is False


@pytest.mark.parametrize(
    ("claims", "text"),
    [
        pytest.param({"username": "carol"}, "carol", id="username"),
        pytest.param({}, "TokenUser 7", id="no-username"),
    ],
)
def test_token_user_str(claims: dict[str, Any], text: str) -> None:
    assert str(TokenUser(7, claims)) == text


def test_token_user_repr() -> None:
    assert repr(TokenUser(7, {})) == "<TokenUser pk=7>"


# canonical_user_id

INTEGER_PK = User._meta.pk


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1, 1, id="int"),
        pytest.param("1", 1, id="str"),
        pytest.param(0, 0, id="zero"),
        pytest.param("-5", -5, id="negative-str"),
        pytest.param(2**63 - 1, 2**63 - 1, id="int64-max"),
        pytest.param(str(-(2**63)), -(2**63), id="int64-min-str"),
    ],
)
def test_integer_id_accepts(value: Any, expected: int) -> None:
    result = canonical_user_id(value, INTEGER_PK)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(1.0, id="float-1.0"),
        pytest.param(1.9, id="float-1.9"),
        pytest.param(" 1 ", id="spaces"),
        pytest.param("1\n", id="newline"),
        pytest.param("01", id="leading-zero"),
        pytest.param("+1", id="plus"),
        pytest.param("1e3", id="exponent"),
        pytest.param("\uff11", id="full-width"),
        pytest.param("\u0661", id="arabic-indic"),
        pytest.param("1 OR 1=1", id="sql"),
        pytest.param({"id": 1}, id="dict"),
        pytest.param([1], id="list"),
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param(2**63, id="int64-overflow"),
        pytest.param(-(2**63) - 1, id="int64-underflow"),
        pytest.param(str(2**63), id="int64-overflow-str"),
        pytest.param("9" * 20, id="twenty-digits"),
    ],
)
def test_integer_id_rejects(value: Any) -> None:
    with pytest.raises(TokenInvalid):
        canonical_user_id(value, INTEGER_PK)


UUID_FIELD = models.UUIDField()
SAMPLE_UUID = "12345678-1234-5678-1234-567812345678"


@pytest.mark.parametrize(
    "value", [pytest.param(SAMPLE_UUID, id="lower"), pytest.param(SAMPLE_UUID.upper(), id="upper")]
)
def test_uuid_id_accepts_the_canonical_form(value: str) -> None:
    assert canonical_user_id(value, UUID_FIELD) == uuid.UUID(SAMPLE_UUID)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(SAMPLE_UUID.replace("-", ""), id="no-hyphens"),
        pytest.param("{" + SAMPLE_UUID + "}", id="braces"),
        pytest.param("urn:uuid:" + SAMPLE_UUID, id="urn"),
        pytest.param(" " + SAMPLE_UUID, id="space"),
        pytest.param(uuid.UUID(SAMPLE_UUID), id="uuid-object"),
        pytest.param(uuid.UUID(SAMPLE_UUID).int, id="integer"),
        pytest.param("", id="empty"),
    ],
)
def test_uuid_id_rejects(value: Any) -> None:
    with pytest.raises(TokenInvalid):
        canonical_user_id(value, UUID_FIELD)


CHAR_FIELD = models.CharField(max_length=8)


@pytest.mark.parametrize(
    "value", [pytest.param("alice", id="short"), pytest.param("a" * 8, id="max-length")]
)
def test_char_id_accepts(value: str) -> None:
    assert canonical_user_id(value, CHAR_FIELD) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("a\x00b", id="nul"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param("a" * 9, id="too-long"),
        pytest.param(5, id="integer"),
        pytest.param(None, id="none"),
        pytest.param(["alice"], id="list"),
    ],
)
def test_char_id_rejects(value: Any) -> None:
    with pytest.raises(TokenInvalid):
        canonical_user_id(value, CHAR_FIELD)


def test_text_id_without_max_length_accepts_long_values() -> None:
    assert canonical_user_id("x" * 1000, models.TextField()) == "x" * 1000


DECIMAL_FIELD = models.DecimalField(max_digits=10, decimal_places=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [pytest.param("12", Decimal(12), id="str"), pytest.param(12, Decimal(12), id="int")],
)
def test_other_field_types_go_through_to_python(value: Any, expected: Any) -> None:
    assert canonical_user_id(value, DECIMAL_FIELD) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("twelve", id="invalid-str"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
    ],
)
def test_other_field_types_reject(value: Any) -> None:
    with pytest.raises(TokenInvalid):
        canonical_user_id(value, DECIMAL_FIELD)


# Custom resolvers, through the middleware.


async def resolve_by_username_claim(claims: Any, scope: Any) -> Any:
    return await User.objects.aget(username=claims["username"])


def resolve_by_username_claim_sync(claims: Any, scope: Any) -> Any:
    # The ORM raises SynchronousOnlyOperation if this runs on the event loop.
    return User.objects.get(username=claims["username"])


class ScopeRecordingResolver:
    """An object with an ``async def __call__`` that records the scope it is given."""

    def __init__(self) -> None:
        self.scopes: list[Any] = []

    async def __call__(self, claims: Any, scope: Any) -> Any:
        self.scopes.append(scope)
        return TokenUser(claims["user_id"], claims)


class SyncResolverObject:
    """An object with a plain ``__call__`` that notes whether it runs on the event loop."""

    def __init__(self) -> None:
        self.on_event_loop: bool | None = None

    def __call__(self, claims: Any, scope: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.on_event_loop = False
        else:
            self.on_event_loop = True
        return TokenUser(int(claims["user_id"]), claims)


async def connect_with(resolver: Any, claims: dict[str, Any]) -> tuple[Any, RecordingApp]:
    inner = RecordingApp()
    app = JWTAuthMiddleware(inner, settings={"USER_RESOLVER": resolver})
    communicator = WebsocketCommunicator(
        app, "/ws/?room=1", subprotocols=["access_token", hs_token(claims)]
    )
    connected, _ = await communicator.connect()
    assert connected
    closed = not await communicator.receive_nothing()
    detail = await communicator.receive_output() if closed else None
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait()
    return detail, inner


@pytest.mark.parametrize(
    "resolver",
    [
        pytest.param("tests.test_users.resolve_by_username_claim", id="async-dotted-path"),
        pytest.param("tests.test_users.resolve_by_username_claim_sync", id="sync-dotted-path"),
        pytest.param(resolve_by_username_claim, id="async-function"),
        pytest.param(resolve_by_username_claim_sync, id="sync-function"),
    ],
)
async def test_custom_resolver(resolver: Any, user: Any) -> None:
    closed, inner = await connect_with(resolver, claims_for(user.pk, username="alice"))
    assert closed is None
    assert inner.scopes[0]["user"] == user


async def test_custom_resolver_that_raises_closes_with_4503(user: Any) -> None:
    closed, inner = await connect_with(
        resolve_by_username_claim, claims_for(user.pk, username="nobody")
    )
    assert closed == {"type": "websocket.close", "code": 4503, "reason": "auth_unavailable"}
    assert not inner.called


async def test_custom_resolver_sees_the_scope_without_the_token(user: Any) -> None:
    resolver = ScopeRecordingResolver()
    claims = claims_for(user.pk)
    closed, _ = await connect_with(resolver, claims)
    assert closed is None
    (scope,) = resolver.scopes
    assert scope["subprotocols"] == []
    assert scope["query_string"] == b"room=1"
    assert hs_token(claims) not in repr(scope)


async def test_sync_resolver_object_runs_off_the_event_loop(transactional_db: None) -> None:
    resolver = SyncResolverObject()
    closed, inner = await connect_with(resolver, claims_for(3))
    assert closed is None
    assert inner.scopes[0]["user"] == TokenUser(3, {})
    assert resolver.on_event_loop is False


async def refusing_resolver(claims: Any, scope: Any) -> Any:
    raise UserRejected("refused by the project's resolver")


# The user resolver.


@pytest.mark.parametrize(
    ("resolver", "expected"),
    [
        pytest.param(crashing_resolver, close_message(4503, "auth_unavailable"), id="raises"),
        pytest.param(finding_nobody, close_message(4403, "user_rejected"), id="none"),
        pytest.param(refusing_resolver, close_message(4403, "user_rejected"), id="user-rejected"),
    ],
)
async def test_resolver_outcome_decides_the_close(
    resolver: Any, expected: dict[str, Any], user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner, settings={"USER_RESOLVER": resolver})
    _, close = await rejection(app, subprotocols=["access_token", token_for(user)])
    assert close == expected
    assert not inner.called


async def test_inactive_user_is_rejected(inactive_user: Any, inner: RecordingApp) -> None:
    _, close = await rejection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(inactive_user)]
    )
    assert close == close_message(4403, "user_rejected")


async def test_token_user_resolver_gives_a_token_user(inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"USER_RESOLVER": "channels_jwt.users.token_user"})
    communicator, outcome = await open_connection(
        app, subprotocols=["access_token", hs_token(claims_for(7, username="carol"))]
    )
    assert outcome == (True, "access_token")
    scope_user = inner.scopes[0]["user"]
    assert isinstance(scope_user, TokenUser)
    assert (scope_user.pk, scope_user.username) == (7, "carol")
    await communicator.disconnect()


# Identity-provider-shaped tokens.


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        pytest.param({}, None, id="aud-list-with-ours"),
        pytest.param({"aud": "https://api.example.com"}, None, id="aud-string"),
        pytest.param({"aud": ["https://other.example.com"]}, 4401, id="aud-list-without-ours"),
        pytest.param({"aud": ...}, 4401, id="no-aud"),
        pytest.param({"iss": "https://evil.example.com/"}, 4401, id="iss-other"),
        pytest.param({"iss": ...}, 4401, id="no-iss"),
        pytest.param({"sub": ...}, 4401, id="no-sub"),
        pytest.param({"sub": "auth0|5f7c8ec7c33c6c004bbafe82"}, None, id="sub-auth0-shaped"),
        pytest.param({"token_type": "refresh"}, None, id="token-type-not-checked"),
        pytest.param({"exp": int(time.time()) - 60}, 4440, id="expired"),
    ],
)
async def test_idp_claims(
    jwks_server: JWKSServer, keys: Keys, claims: dict[str, Any], code: int | None
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    app = idp_app(jwks_server.url)

    outcome = await handshake(app, idp_token(keys.rsa, "key-1", **claims))

    assert outcome.code == code


async def test_sub_names_a_database_user_by_username(
    jwks_server: JWKSServer, keys: Keys, user: Any
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    inner = RecordingApp()
    app = idp_app(jwks_server.url, inner, USER_RESOLVER="channels_jwt.users.database_user")

    known = await handshake(app, idp_token(keys.rsa, "key-1", sub="alice"))
    unknown = await handshake(app, idp_token(keys.rsa, "key-1", sub="mallory"))

    assert known.accepted
    assert inner.scopes[0]["user"] == user
    assert (unknown.code, unknown.reason) == (4403, "user_rejected")


async def create_user_on_first_sight(claims: Any, scope: Any) -> Any:
    """A project's resolver: the identity provider vouches for the user, so create them."""
    user, _ = await get_user_model().objects.aget_or_create(
        username=claims["sub"], defaults={"email": claims.get("email", "")}
    )
    return user


async def test_custom_resolver_creates_the_user_on_first_sight(
    jwks_server: JWKSServer, keys: Keys, transactional_db: None
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    inner = RecordingApp()
    app = idp_app(jwks_server.url, inner, USER_RESOLVER=create_user_on_first_sight)
    token = idp_token(keys.rsa, "key-1", sub="auth0|new-user", email="new@example.com")

    first = await handshake(app, token)
    second = await handshake(app, token)

    users = get_user_model().objects
    assert (first.code, second.code) == (None, None)
    assert await users.filter(username="auth0|new-user").acount() == 1
    created = await users.aget(username="auth0|new-user")
    assert created.email == "new@example.com"
    assert inner.scopes[0]["user"] == created
    assert inner.scopes[1]["user"] == created
