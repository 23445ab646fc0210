"""Revocation (``channels_jwt.revocation``): ``REVOCATION_CHECK`` hooks, the cache denylist
and ``revoke_token``, simplejwt's blacklist."""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.apps import apps
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

import channels_jwt.config
from channels_jwt import (
    JWTAuthMiddleware,
    TokenInvalid,
    TokenMalformed,
    adisconnect_user,
    arevoke_token,
    revoke_token,
)
from channels_jwt.conf import Config, Settings
from channels_jwt.conf import settings as project_settings
from channels_jwt.config import Parsed, parse
from channels_jwt.pipeline import Pipeline
from channels_jwt.revocation import cache_denylist, denylist_key
from tests.harness import (
    CLOSE_REVOKED,
    CLOSE_UNAVAILABLE,
    LOGGER,
    OTHER_KEY,
    TIMEOUT,
    Configure,
    RecordingApp,
    Sockets,
    claims_for,
    close_message,
    hs_token,
    open_connection,
    rejection,
    token_for,
)

REVOKED_JTI = "revoked-jti-0001"


async def revoked_if_flagged_async(claims: Any) -> bool:
    return claims["jti"] == REVOKED_JTI


def revoked_if_flagged_sync(claims: Any) -> bool:
    return claims["jti"] == REVOKED_JTI


class AsyncRevocationCheck:
    """A callable object with an ``async def __call__`` (not a function)."""

    async def __call__(self, claims: Any) -> bool:
        return claims["jti"] == REVOKED_JTI


class RecordingRevocationCheck:
    """Records the claims it is asked about; revokes nothing."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def __call__(self, claims: Any) -> bool:
        self.calls.append(claims)
        return False


async def crashing_revocation_check(claims: Any) -> bool:
    raise ConnectionError("cache is down")


# REVOCATION_CHECK.

REVOCATION_HOOKS = [
    pytest.param("tests.test_revocation.revoked_if_flagged_async", id="async-dotted-path"),
    pytest.param("tests.test_revocation.revoked_if_flagged_sync", id="sync-dotted-path"),
    pytest.param(revoked_if_flagged_async, id="async-function"),
    pytest.param(revoked_if_flagged_sync, id="sync-function"),
    pytest.param(AsyncRevocationCheck(), id="async-callable-object"),
]


@pytest.mark.parametrize("hook", REVOCATION_HOOKS)
async def test_revocation_check_true_closes_with_4441(
    hook: Any, user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner, settings={"REVOCATION_CHECK": hook})
    _, close = await rejection(app, subprotocols=["access_token", token_for(user, jti=REVOKED_JTI)])
    assert close == close_message(4441, "token_revoked")
    assert not inner.called


@pytest.mark.parametrize("hook", REVOCATION_HOOKS)
async def test_revocation_check_false_lets_the_connection_in(
    hook: Any, user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner, settings={"REVOCATION_CHECK": hook})
    communicator, outcome = await open_connection(
        app, subprotocols=["access_token", token_for(user, jti="still-valid")]
    )
    assert outcome == (True, "access_token")
    assert inner.scopes[0]["user"] == user
    await communicator.disconnect()


async def test_revocation_check_is_given_the_verified_claims(
    user: Any, inner: RecordingApp
) -> None:
    check = RecordingRevocationCheck()
    claims = claims_for(user.pk)
    app = JWTAuthMiddleware(inner, settings={"REVOCATION_CHECK": check})
    communicator, _ = await open_connection(app, subprotocols=["access_token", hs_token(claims)])
    assert check.calls == [claims]
    await communicator.disconnect()


async def test_revocation_check_that_raises_closes_with_4503(
    user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner, settings={"REVOCATION_CHECK": crashing_revocation_check})
    _, close = await rejection(app, subprotocols=["access_token", token_for(user)])
    assert close == close_message(4503, "auth_unavailable")
    assert not inner.called


async def test_revocation_check_makes_jti_required(user: Any, inner: RecordingApp) -> None:
    check = RecordingRevocationCheck()
    app = JWTAuthMiddleware(inner, settings={"REVOCATION_CHECK": check})
    _, close = await rejection(app, subprotocols=["access_token", token_for(user, jti=...)])
    assert close == close_message(4401, "token_invalid")
    assert check.calls == []


async def test_jti_is_optional_without_revocation_check(user: Any, inner: RecordingApp) -> None:
    communicator, outcome = await open_connection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user, jti=...)]
    )
    assert outcome == (True, "access_token")
    await communicator.disconnect()


CACHE_DENYLIST = "channels_jwt.revocation.cache_denylist"


# REVOCATION_CHECK = cache_denylist, and revoke_token.


async def test_token_revoked_by_claims_is_refused_at_the_next_handshake(
    configure: Configure, sockets: Sockets
) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    claims = claims_for(1)

    await arevoke_token(claims)

    assert await sockets.refused(JWTAuthMiddleware(RecordingApp()), hs_token(claims)) == (
        CLOSE_REVOKED
    )


async def test_token_revoked_by_string_is_refused_at_the_next_handshake(
    configure: Configure, sockets: Sockets
) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    token = token_for(1)

    await sync_to_async(revoke_token)(token)

    assert await sockets.refused(JWTAuthMiddleware(RecordingApp()), token) == CLOSE_REVOKED


async def test_revoking_one_token_leaves_the_users_other_tokens_valid(
    configure: Configure, sockets: Sockets
) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    await arevoke_token(claims_for(1))

    await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))


async def test_denylist_is_keyed_by_issuer_and_jti(configure: Configure, sockets: Sockets) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    await arevoke_token(claims_for(1, jti="shared-jti", iss="https://other-issuer.example"))

    await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1, jti="shared-jti"))


async def test_cache_denylist_called_directly_reads_the_project_settings(
    configure: Configure,
) -> None:
    # As a custom REVOCATION_CHECK might call it; the middleware calls a copy bound to its own.
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    revoked, kept = claims_for(1, jti="revoked-jti"), claims_for(1, jti="kept-jti")

    await arevoke_token(revoked)

    assert await cache_denylist(revoked) is True
    assert await cache_denylist(kept) is False


def denylist_expiry(claims: Mapping[str, Any]) -> float | None:
    """When the default (local-memory) cache drops the token's denylist entry.

    ``LocMemCache`` keeps each key's expiry instant in ``_expire_info`` (``None``: never).
    """
    cache = caches["default"]
    key = cache.make_and_validate_key(denylist_key(claims))  # type: ignore[attr-defined]
    expiry: float | None = cache._expire_info[key]  # type: ignore[attr-defined]
    return expiry


@pytest.mark.parametrize("leeway", [0, 5], ids=["no-leeway", "leeway-5"])
async def test_denylist_entry_lasts_until_exp_plus_leeway(
    leeway: int, configure: Configure
) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST, LEEWAY=leeway)
    claims = claims_for(1, exp=int(time.time()) + 100)

    await arevoke_token(claims)

    expires = denylist_expiry(claims)
    assert expires is not None
    assert claims["exp"] + leeway - 2 <= expires <= claims["exp"] + leeway + 1


async def test_denylist_entry_of_a_token_without_exp_never_expires(configure: Configure) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    claims = {"jti": "no-exp-jti", "user_id": "1"}

    await arevoke_token(claims)

    assert caches["default"].get(denylist_key(claims)) == 1
    assert denylist_expiry(claims) is None


async def test_revoking_an_expired_token_string_is_ignored(configure: Configure) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    now = int(time.time())
    claims = claims_for(1, iat=now - 600, exp=now - 300)

    await arevoke_token(hs_token(claims))

    assert caches["default"].get(denylist_key(claims)) is None


@pytest.mark.parametrize(
    ("keys", "claims_or_token"),
    [
        pytest.param({}, lambda: {"exp": 2_000_000_000, "user_id": "1"}, id="claims"),
        # Minted when the test runs: one minted at collection expires during a long session.
        pytest.param({}, lambda: token_for(1, jti=...), id="token-without-revocation-settings"),
    ],
)
async def test_revoking_a_token_without_jti_raises_value_error(
    keys: dict[str, Any], claims_or_token: Callable[[], Any], configure: Configure
) -> None:
    configure(**keys)

    with pytest.raises(ValueError, match="jti"):
        await arevoke_token(claims_or_token())


@pytest.mark.parametrize(
    ("token", "error"),
    [
        pytest.param(lambda: "not-a-jwt", TokenMalformed, id="garbage"),
        pytest.param(lambda: hs_token(claims_for(1), key=OTHER_KEY), TokenInvalid, id="bad-key"),
        pytest.param(lambda: token_for(1, jti=...), TokenInvalid, id="no-jti-with-revocation"),
    ],
)
async def test_revoking_a_bad_token_string_raises_its_error(
    token: Callable[[], str], error: type[Exception], configure: Configure
) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)

    with pytest.raises(error):
        await arevoke_token(token())


async def test_revoking_a_token_string_builds_no_pipeline_and_parses_once(
    configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)
    parses: list[Settings] = []

    def counted_parse(settings: Settings) -> Parsed:
        parses.append(settings)
        return parse(settings)

    def no_pipeline(config: Config) -> Pipeline:
        raise AssertionError("revoke_token built a pipeline")

    monkeypatch.setattr(channels_jwt.config, "parse", counted_parse)
    monkeypatch.setattr(Pipeline, "from_config", no_pipeline)

    await arevoke_token(token_for(1, jti="first"))
    await arevoke_token(token_for(1, jti="second"))

    assert parses == [project_settings]
    assert await cache_denylist(claims_for(1, jti="second")) is True


async def test_revoking_with_misconfigured_settings_raises_improperly_configured(
    configure: Configure,
) -> None:
    configure(SIGNING_KEY="")

    with pytest.raises(ImproperlyConfigured, match=r"channels_jwt\.E006"):
        await arevoke_token(token_for(1))


async def test_unreachable_cache_closes_the_handshake_with_4503(
    configure: Configure, sockets: Sockets, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    configure(REVOCATION_CHECK=CACHE_DENYLIST, REVOCATION_CACHE="unreachable")
    inner = RecordingApp()

    close = await sockets.refused(JWTAuthMiddleware(inner), token_for(1))

    assert close == CLOSE_UNAVAILABLE
    assert not inner.called
    assert (
        "WebSocket authentication unavailable: revocation check failed (ConnectionError)"
        in caplog.messages
    )


async def test_revoke_token_raises_when_the_cache_is_unreachable(configure: Configure) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST, REVOCATION_CACHE="unreachable")

    with pytest.raises(redis.exceptions.ConnectionError):
        await arevoke_token(claims_for(1))


# REVOCATION_CHECK = simplejwt_blacklist.


BLACKLIST_APP = "rest_framework_simplejwt.token_blacklist"
BLACKLIST_MODELS = f"{BLACKLIST_APP}.models"
#: simplejwt's blacklist models module as imported with its app installed (once per session).
_installed_blacklist_models: list[ModuleType] = []


@pytest.fixture
def blacklist_app(transactional_db: None, settings: Any) -> Iterator[ModuleType]:
    """``rest_framework_simplejwt.token_blacklist`` installed and migrated for one test.

    simplejwt declares its models abstract unless the app is in ``INSTALLED_APPS`` when the
    module is imported, and ``override_settings`` fills the app registry (importing the
    module) before it swaps the new settings in: the module imported then is abstract. So
    import it once more with the new settings in place, and put the original back after.
    """
    original = sys.modules.get(BLACKLIST_MODELS)
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, BLACKLIST_APP]
    if not _installed_blacklist_models:
        sys.modules.pop(BLACKLIST_MODELS, None)
        _installed_blacklist_models.append(importlib.import_module(BLACKLIST_MODELS))
    models = _installed_blacklist_models[0]
    sys.modules[BLACKLIST_MODELS] = models
    apps.clear_cache()
    call_command("migrate", "token_blacklist", verbosity=0)
    try:
        yield models
    finally:
        models.OutstandingToken.objects.all().delete()  # and, cascading, the blacklist
        call_command("migrate", "token_blacklist", "zero", verbosity=0)
        if original is None:
            sys.modules.pop(BLACKLIST_MODELS, None)
        else:
            sys.modules[BLACKLIST_MODELS] = original


def blacklist(
    models: ModuleType, user: Any, token: str, claims: Mapping[str, Any], *, listed: bool
) -> None:
    """Record ``token`` as outstanding for ``user``; blacklist it if ``listed``."""
    outstanding = models.OutstandingToken.objects.create(
        user=user,
        jti=claims["jti"],
        token=token,
        expires_at=datetime.fromtimestamp(claims["exp"], tz=timezone.utc),
    )
    if listed:
        models.BlacklistedToken.objects.create(token=outstanding)


@pytest.mark.parametrize(("listed", "code"), [(True, 4441), (False, None)], ids=["listed", "not"])
async def test_simplejwt_blacklist_refuses_blacklisted_tokens(
    listed: bool,
    code: int | None,
    blacklist_app: ModuleType,
    user: Any,
    configure: Configure,
    sockets: Sockets,
) -> None:
    configure(
        USER_RESOLVER="channels_jwt.users.database_user",
        REVOCATION_CHECK="channels_jwt.revocation.simplejwt_blacklist",
    )
    claims = claims_for(user.pk)
    token = hs_token(claims)
    await database_sync_to_async(blacklist)(blacklist_app, user, token, claims, listed=listed)
    app = JWTAuthMiddleware(RecordingApp())

    if listed:
        assert await sockets.refused(app, token) == CLOSE_REVOKED
    else:
        await sockets.open(app, token)


# disconnect_user: a user, or its USER_ID_FIELD value, and nothing else.


async def test_disconnect_user_takes_a_user_instance(
    configure: Configure, sockets: Sockets, user: Any
) -> None:
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(user))

    await adisconnect_user(user)

    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED


async def test_disconnect_user_of_a_numeric_username_reaches_that_user_only(
    configure: Configure, sockets: Sockets, django_user_model: Any, transactional_db: None
) -> None:
    # str(user) is the username: "2" named the sockets of the user whose pk is 2.
    first = await django_user_model.objects.acreate(username="first")
    numeric = await django_user_model.objects.acreate(username=str(first.pk))
    configure(LIVE_REVOCATION=True)
    app = JWTAuthMiddleware(RecordingApp())
    firsts = await sockets.open(app, token_for(first))
    numerics = await sockets.open(app, token_for(numeric))

    await adisconnect_user(numeric)

    assert await numerics.receive_output(TIMEOUT) == CLOSE_REVOKED
    assert await firsts.receive_nothing(0.2)


async def test_disconnect_user_by_username_where_users_are_named_by_username(
    configure: Configure, sockets: Sockets, user: Any
) -> None:
    configure(LIVE_REVOCATION=True, USER_ID_FIELD="username", USER_ID_CLAIM="username")
    app = JWTAuthMiddleware(RecordingApp())
    by_value = await sockets.open(app, hs_token(claims_for(user_id=..., username="alice")))
    by_user = await sockets.open(app, hs_token(claims_for(user_id=..., username="alice")))

    await adisconnect_user("alice")
    assert await by_value.receive_output(TIMEOUT) == CLOSE_REVOKED
    await adisconnect_user(user)
    assert await by_user.receive_output(TIMEOUT) == CLOSE_REVOKED


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(None, id="none"),
        pytest.param(True, id="bool"),
        pytest.param(1.0, id="float"),
        pytest.param(object(), id="object"),
        pytest.param({"pk": 1}, id="dict"),
    ],
)
async def test_disconnect_user_refuses_anything_else_with_type_error(
    configure: Configure, given: Any
) -> None:
    configure(LIVE_REVOCATION=True)
    with pytest.raises(TypeError, match="expected a user or its id"):
        await adisconnect_user(given)


async def test_disconnect_user_refuses_a_value_no_user_can_have(configure: Configure) -> None:
    configure(LIVE_REVOCATION=True)
    with pytest.raises(ValueError, match="'alice' is not a id a user can have"):
        await adisconnect_user("alice")


async def test_disconnect_user_takes_a_token_user(configure: Configure, sockets: Sockets) -> None:
    configure(LIVE_REVOCATION=True, USER_RESOLVER="channels_jwt.users.token_user")
    inner = RecordingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(9))

    await adisconnect_user(inner.scopes[0]["user"])

    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED
