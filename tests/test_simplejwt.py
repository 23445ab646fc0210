"""Zero-config interop with djangorestframework-simplejwt (SIMPLE_JWT, no CHANNELS_JWT)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt import settings as simplejwt_settings
from rest_framework_simplejwt import tokens
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, SlidingToken, Token

from channels_jwt import JWTAuthMiddleware, issue_token
from tests.harness import Keys, RecordingApp, claims_for, hs_token, private_pem, public_pem

KEY_A = "simplejwt-key-a-" + "a" * 48
KEY_B = "channels-jwt-key-b-" + "b" * 48

Configure = Callable[..., None]


@pytest.fixture
def simplejwt(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Configure a project as ``SIMPLE_JWT=...`` and ``CHANNELS_JWT={...}`` (default empty).

    simplejwt reloads ``rest_framework_simplejwt.settings.api_settings`` on
    ``setting_changed``, and channels_jwt reads it from there; but simplejwt's ``tokens``
    module bound ``api_settings`` at import, and its token backend was built once. To issue
    the tokens a process started with these settings would issue, point both at the reloaded
    settings (monkeypatch undoes it).
    """

    def configure(channels_jwt: dict[str, Any] | None = None, **simple_jwt: Any) -> None:
        settings.CHANNELS_JWT = channels_jwt or {}
        settings.SIMPLE_JWT = simple_jwt
        api = simplejwt_settings.api_settings
        monkeypatch.setattr(tokens, "api_settings", api)
        backend = TokenBackend(
            api.ALGORITHM,
            api.SIGNING_KEY,
            api.VERIFYING_KEY,
            api.AUDIENCE,
            api.ISSUER,
            api.JWK_URL,
            api.LEEWAY,
            api.JSON_ENCODER,
        )
        monkeypatch.setattr(Token, "_token_backend", backend)

    return configure


async def connect(token: str | Token) -> tuple[Any, RecordingApp]:
    """Connect with ``token``; return ``None`` if accepted (else the close) and the app."""
    inner = RecordingApp()
    communicator = WebsocketCommunicator(
        JWTAuthMiddleware(inner), "/ws/", subprotocols=["access_token", str(token)]
    )
    connected, _ = await communicator.connect()
    assert connected
    closed = None if await communicator.receive_nothing() else await communicator.receive_output()
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait()
    return closed, inner


def closed_with(code: int, reason: str) -> dict[str, Any]:
    return {"type": "websocket.close", "code": code, "reason": reason}


async def test_simplejwt_defaults_accept_an_access_token(user: Any, settings: Any) -> None:
    # No SIMPLE_JWT at all: simplejwt signs HS256 with SECRET_KEY, and so verifies channels_jwt.
    settings.CHANNELS_JWT = {}
    closed, inner = await connect(AccessToken.for_user(user))
    assert closed is None
    assert inner.scopes[0]["user"] == user


async def test_simplejwt_defaults_reject_a_refresh_token(user: Any, settings: Any) -> None:
    settings.CHANNELS_JWT = {}
    closed, inner = await connect(RefreshToken.for_user(user))
    assert closed == closed_with(4401, "token_invalid")
    assert not inner.called


async def test_simple_jwt_settings_accept_an_access_token(user: Any, simplejwt: Configure) -> None:
    simplejwt(SIGNING_KEY=KEY_A)
    closed, inner = await connect(AccessToken.for_user(user))
    assert closed is None
    assert inner.scopes[0]["jwt"].claims["user_id"] == str(user.pk)


async def test_simple_jwt_settings_reject_a_refresh_token(user: Any, simplejwt: Configure) -> None:
    simplejwt(SIGNING_KEY=KEY_A)
    closed, _ = await connect(RefreshToken.for_user(user))
    assert closed == closed_with(4401, "token_invalid")


async def test_simple_jwt_signing_key_is_the_verifying_key(user: Any, simplejwt: Configure) -> None:
    simplejwt(SIGNING_KEY=KEY_A)
    closed, _ = await connect(hs_token(claims_for(user.pk), key=KEY_B))
    assert closed == closed_with(4401, "token_invalid")


async def test_simple_jwt_hs512(user: Any, simplejwt: Configure) -> None:
    simplejwt(ALGORITHM="HS512", SIGNING_KEY="x" * 64)
    closed, inner = await connect(AccessToken.for_user(user))
    assert closed is None
    assert inner.scopes[0]["user"] == user


async def test_simple_jwt_rs256(user: Any, keys: Keys, simplejwt: Configure) -> None:
    simplejwt(
        ALGORITHM="RS256", SIGNING_KEY=private_pem(keys.rsa), VERIFYING_KEY=public_pem(keys.rsa)
    )
    closed, inner = await connect(AccessToken.for_user(user))
    assert closed is None
    assert inner.scopes[0]["user"] == user


async def test_issue_token_signs_with_the_simple_jwt_private_key(
    user: Any, keys: Keys, simplejwt: Configure
) -> None:
    simplejwt(
        ALGORITHM="RS256", SIGNING_KEY=private_pem(keys.rsa), VERIFYING_KEY=public_pem(keys.rsa)
    )
    token = issue_token(user)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    closed, inner = await connect(token)
    assert closed is None
    assert inner.scopes[0]["user"] == user


async def test_simple_jwt_rs256_rejects_another_key(
    user: Any, keys: Keys, simplejwt: Configure
) -> None:
    simplejwt(
        ALGORITHM="RS256",
        SIGNING_KEY=private_pem(keys.rsa_other),
        VERIFYING_KEY=public_pem(keys.rsa_other),
    )
    token = str(AccessToken.for_user(user))
    simplejwt(
        ALGORITHM="RS256", SIGNING_KEY=private_pem(keys.rsa), VERIFYING_KEY=public_pem(keys.rsa)
    )
    closed, _ = await connect(token)
    assert closed == closed_with(4401, "token_invalid")


async def test_simple_jwt_audience_and_issuer(user: Any, simplejwt: Configure) -> None:
    simplejwt(SIGNING_KEY=KEY_A, AUDIENCE="chat", ISSUER="https://auth.example")
    closed, inner = await connect(AccessToken.for_user(user))
    assert closed is None
    claims = inner.scopes[0]["jwt"].claims
    assert (claims["aud"], claims["iss"]) == ("chat", "https://auth.example")


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "other", "iss": "https://auth.example"}, id="wrong-audience"),
        pytest.param({"aud": "chat", "iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({}, id="neither"),
    ],
)
async def test_simple_jwt_audience_and_issuer_are_enforced(
    claims: dict[str, Any], user: Any, simplejwt: Configure
) -> None:
    simplejwt(SIGNING_KEY=KEY_A, AUDIENCE="chat", ISSUER="https://auth.example")
    closed, _ = await connect(hs_token(claims_for(user.pk, **claims), key=KEY_A))
    assert closed == closed_with(4401, "token_invalid")


async def test_simple_jwt_user_id_claim_and_field(user: Any, simplejwt: Configure) -> None:
    simplejwt(SIGNING_KEY=KEY_A, USER_ID_FIELD="username", USER_ID_CLAIM="sub")
    token = AccessToken.for_user(user)
    assert token["sub"] == "alice"
    closed, inner = await connect(token)
    assert closed is None
    assert inner.scopes[0]["user"] == user


@pytest.mark.parametrize(
    "leeway", [pytest.param(30, id="seconds"), pytest.param(timedelta(seconds=30), id="timedelta")]
)
async def test_simple_jwt_leeway(leeway: Any, user: Any, simplejwt: Configure) -> None:
    simplejwt(SIGNING_KEY=KEY_A, LEEWAY=leeway)
    token = AccessToken.for_user(user)
    token["exp"] = int(time.time()) - 10
    closed, _ = await connect(token)
    assert closed is None


async def test_without_simple_jwt_leeway_an_expired_token_is_refused(
    user: Any, simplejwt: Configure
) -> None:
    simplejwt(SIGNING_KEY=KEY_A)
    token = AccessToken.for_user(user)
    token["exp"] = int(time.time()) - 10
    closed, _ = await connect(token)
    assert closed == closed_with(4440, "token_expired")


async def test_simple_jwt_auth_token_classes_decide_the_token_types(
    user: Any, simplejwt: Configure
) -> None:
    simplejwt(
        SIGNING_KEY=KEY_A, AUTH_TOKEN_CLASSES=("rest_framework_simplejwt.tokens.SlidingToken",)
    )
    closed, _ = await connect(SlidingToken.for_user(user))
    assert closed is None
    closed, _ = await connect(AccessToken.for_user(user))
    assert closed == closed_with(4401, "token_invalid")


async def test_channels_jwt_signing_key_wins_over_simple_jwt(
    user: Any, simplejwt: Configure
) -> None:
    simplejwt({"SIGNING_KEY": KEY_B}, SIGNING_KEY=KEY_A)
    closed, _ = await connect(AccessToken.for_user(user))
    assert closed == closed_with(4401, "token_invalid")
    closed, _ = await connect(hs_token(claims_for(user.pk), key=KEY_B))
    assert closed is None


async def test_channels_jwt_audience_wins_over_simple_jwt(user: Any, simplejwt: Configure) -> None:
    simplejwt({"AUDIENCE": "stream"}, SIGNING_KEY=KEY_A, AUDIENCE="chat")
    closed, _ = await connect(AccessToken.for_user(user))
    assert closed == closed_with(4401, "token_invalid")


async def test_channels_jwt_user_id_claim_wins_over_simple_jwt(
    user: Any, simplejwt: Configure
) -> None:
    simplejwt({"USER_ID_CLAIM": "uid"}, SIGNING_KEY=KEY_A, USER_ID_CLAIM="sub")
    token = AccessToken.for_user(user)
    closed, _ = await connect(token)
    assert closed == closed_with(4401, "token_invalid")
    token["uid"] = str(user.pk)
    closed, _ = await connect(token)
    assert closed is None


async def test_simple_jwt_leeway_above_a_minute_is_refused(user: Any, simplejwt: Configure) -> None:
    simplejwt(SIGNING_KEY=KEY_A, LEEWAY=timedelta(minutes=5))
    closed, _ = await connect(AccessToken.for_user(user))
    assert closed == closed_with(4503, "auth_unavailable")


async def test_simple_jwt_is_ignored_when_not_installed(
    user: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "rest_framework_simplejwt.settings", None)
    settings.SIMPLE_JWT = {"ALGORITHM": "HS512", "SIGNING_KEY": KEY_A, "USER_ID_CLAIM": "sub"}
    settings.CHANNELS_JWT = {"SIGNING_KEY": KEY_B}
    closed, _ = await connect(hs_token(claims_for(user.pk), key=KEY_B))
    assert closed is None


async def test_without_simplejwt_there_is_no_key(
    user: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rest_framework_simplejwt.settings", None)
    settings.CHANNELS_JWT = {}
    closed, _ = await connect(hs_token(claims_for(user.pk), key=settings.SECRET_KEY))
    assert closed == closed_with(4503, "auth_unavailable")


def test_simplejwt_settings_are_imported_when_not_loaded_yet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from channels_jwt.conf import simplejwt_default

    monkeypatch.delitem(sys.modules, "rest_framework_simplejwt.settings")
    assert simplejwt_default("USER_ID_CLAIM") == "user_id"
    assert "rest_framework_simplejwt.settings" in sys.modules


# CHECK_REVOKE_TOKEN: a password change ends the tokens minted before it (issue 15, item 9).


async def test_check_revoke_token_refuses_a_token_minted_before_a_password_change(
    user: Any, simplejwt: Configure
) -> None:
    simplejwt(SIGNING_KEY=KEY_A, CHECK_REVOKE_TOKEN=True)
    token = str(AccessToken.for_user(user))
    closed, _ = await connect(token)
    assert closed is None

    user.set_password("a-new-password")
    await user.asave()

    closed, inner = await connect(token)
    assert closed == closed_with(4441, "token_revoked")
    assert not inner.called
    closed, _ = await connect(AccessToken.for_user(user))
    assert closed is None


async def test_check_revoke_token_refuses_a_token_without_the_claim(
    user: Any, simplejwt: Configure
) -> None:
    simplejwt(SIGNING_KEY=KEY_A, CHECK_REVOKE_TOKEN=True)
    closed, _ = await connect(hs_token(claims_for(user.pk), key=KEY_A))
    assert closed == closed_with(4441, "token_revoked")


async def test_check_revoke_token_holds_for_a_cached_user(user: Any, simplejwt: Configure) -> None:
    simplejwt({"USER_CACHE_SECONDS": 60}, SIGNING_KEY=KEY_A, CHECK_REVOKE_TOKEN=True)
    assert (await connect(AccessToken.for_user(user)))[0] is None  # now cached
    closed, _ = await connect(hs_token(claims_for(user.pk), key=KEY_A))
    assert closed == closed_with(4441, "token_revoked")


async def test_without_check_revoke_token_a_password_change_changes_nothing(
    user: Any, simplejwt: Configure
) -> None:
    simplejwt(SIGNING_KEY=KEY_A)
    token = str(AccessToken.for_user(user))
    user.set_password("a-new-password")
    await user.asave()

    closed, _ = await connect(token)
    assert closed is None
