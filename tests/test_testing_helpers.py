"""channels_jwt.testing: make_token and JWTWebsocketCommunicator."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from channels_jwt import JWTAuthMiddleware
from channels_jwt.testing import JWTWebsocketCommunicator, make_token
from tests.harness import (
    HS_KEY,
    Keys,
    RecordingApp,
    claims_for,
    hs_token,
    private_pem,
    public_pem,
)

ALL_SOURCES = {"TOKEN_SOURCES": ["subprotocol", "query", "header", "cookie"], "COOKIE_NAME": "jwt"}


@pytest.fixture
def all_sources(settings: Any) -> None:
    """Every source on, project-wide (the communicator reads the project's settings)."""
    settings.CHANNELS_JWT = {**settings.CHANNELS_JWT, **ALL_SOURCES}


def decoded(token: str, algorithm: str = "HS256") -> dict[str, Any]:
    return jwt.decode(token, HS_KEY, algorithms=[algorithm])


# make_token


def test_make_token_is_a_valid_access_token(user: Any) -> None:
    before = int(time.time())
    claims = decoded(make_token(user))
    assert claims["user_id"] == str(user.pk)
    assert claims["token_type"] == "access"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 300
    assert isinstance(claims["jti"], str)


def test_make_token_adds_claims(user: Any) -> None:
    claims = decoded(make_token(user, scope="chat", is_staff=True))
    assert (claims["scope"], claims["is_staff"]) == ("chat", True)


def test_make_token_replaces_claims(user: Any) -> None:
    claims = decoded(make_token(user, exp=2_000_000_000, token_type="refresh"))
    assert (claims["exp"], claims["token_type"]) == (2_000_000_000, "refresh")


def test_make_token_gives_a_fresh_jti_each_time(user: Any) -> None:
    assert decoded(make_token(user))["jti"] != decoded(make_token(user))["jti"]


def test_make_token_follows_the_settings(user: Any, settings: Any) -> None:
    settings.CHANNELS_JWT = {
        "SIGNING_KEY": HS_KEY,
        "ALGORITHMS": ["HS384"],
        "USER_ID_CLAIM": "sub",
        "USER_ID_FIELD": "username",
        "AUDIENCE": "chat",
    }
    token = make_token(user)
    assert jwt.get_unverified_header(token)["alg"] == "HS384"
    claims = jwt.decode(token, HS_KEY, algorithms=["HS384"], audience="chat")
    assert claims["sub"] == "alice"


async def test_make_token_signs_with_the_private_key_for_asymmetric_algorithms(
    user: Any, inner: RecordingApp, keys: Keys, settings: Any
) -> None:
    settings.CHANNELS_JWT = {
        "ALGORITHMS": ["ES256"],
        "VERIFYING_KEY": public_pem(keys.p256),
        "PRIVATE_KEY": private_pem(keys.p256),
    }
    token = make_token(user)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    communicator = JWTWebsocketCommunicator(JWTAuthMiddleware(inner), "/ws/", token=token)
    assert await communicator.connect() == (True, "access_token")
    assert inner.scopes[0]["user"] == user
    await communicator.disconnect()


# JWTWebsocketCommunicator


@pytest.mark.parametrize(
    ("transport", "subprotocol"),
    [
        pytest.param("subprotocol", "access_token", id="subprotocol"),
        pytest.param("query", None, id="query"),
        pytest.param("header", None, id="header"),
        pytest.param("cookie", None, id="cookie"),
    ],
)
async def test_communicator_connects_through_each_transport(
    transport: Any, subprotocol: str | None, user: Any, inner: RecordingApp, all_sources: None
) -> None:
    token = make_token(user)
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner), "/ws/", token=token, transport=transport
    )
    assert await communicator.connect() == (True, subprotocol)
    (scope,) = inner.scopes
    assert scope["user"] == user
    assert scope["jwt"].source == transport
    assert token not in repr(scope)
    await communicator.disconnect()


async def test_communicator_appends_the_query_parameter_to_an_existing_query(
    user: Any, inner: RecordingApp
) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner), "/ws/?room=lobby", token=make_token(user), transport="query"
    )
    assert await communicator.connect() == (True, None)
    assert inner.scopes[0]["query_string"] == b"room=lobby"
    assert inner.scopes[0]["jwt"].source == "query"
    await communicator.disconnect()


async def test_communicator_keeps_given_subprotocols_and_headers(
    user: Any, inner: RecordingApp
) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner),
        "/ws/",
        token=make_token(user),
        subprotocols=["chat"],
        headers=[(b"user-agent", b"tests")],
    )
    assert await communicator.connect() == (True, "access_token")
    assert inner.scopes[0]["subprotocols"] == ["chat"]
    assert inner.scopes[0]["headers"] == [(b"user-agent", b"tests")]
    await communicator.disconnect()


async def test_communicator_cookie_carries_the_origin(
    user: Any, inner: RecordingApp, all_sources: None
) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner),
        "/ws/",
        token=make_token(user),
        transport="cookie",
        origin="https://evil.example",
    )
    assert await communicator.connect() == (False, 4401)


async def test_communicator_cookie_comes_from_the_test_servers_own_origin(
    user: Any, inner: RecordingApp, all_sources: None
) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner), "/ws/", token=make_token(user), transport="cookie"
    )
    assert await communicator.connect() == (True, None)
    assert inner.scopes[0]["headers"] == [
        (b"host", b"testserver"),
        (b"origin", b"http://testserver"),
    ]
    await communicator.disconnect()


async def test_communicator_cookie_origin_follows_a_given_host(
    user: Any, inner: RecordingApp, all_sources: None
) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner),
        "/ws/",
        token=make_token(user),
        transport="cookie",
        headers=[(b"host", b"localhost:8000")],
    )
    assert await communicator.connect() == (True, None)
    assert inner.scopes[0]["headers"] == [
        (b"host", b"localhost:8000"),
        (b"origin", b"http://localhost:8000"),
    ]
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        pytest.param([], "http://testserver:8000", id="other-port"),
        pytest.param([], "https://testserver", id="other-scheme"),
        pytest.param([], "http://localhost", id="other-allowed-host"),
        pytest.param([(b"host", b"test server")], None, id="malformed-host"),
    ],
)
async def test_communicator_cookie_from_another_origin_is_refused(
    headers: list[tuple[bytes, bytes]],
    origin: str | None,
    user: Any,
    inner: RecordingApp,
    all_sources: None,
) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner),
        "/ws/",
        token=make_token(user),
        transport="cookie",
        headers=headers,
        origin=origin,
    )
    assert await communicator.connect() == (False, 4401)


async def test_communicator_without_token_adds_nothing(inner: RecordingApp) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(inner, settings={"ALLOW_ANONYMOUS": True}), "/ws/"
    )
    assert await communicator.connect() == (True, None)
    assert inner.scopes[0]["subprotocols"] == []
    assert inner.scopes[0]["headers"] == []
    assert inner.scopes[0]["query_string"] == b""
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(
            lambda user: hs_token(
                claims_for(user.pk, iat=int(time.time()) - 600, exp=int(time.time()) - 300)
            ),
            4440,
            id="expired",
        ),
        pytest.param(lambda user: "not-a-jwt", 4400, id="malformed"),
        pytest.param(lambda user: None, 4401, id="missing"),
    ],
)
async def test_rejection_is_reported_as_not_connected(
    make: Callable[[Any], str | None], code: int, user: Any, inner: RecordingApp
) -> None:
    communicator = JWTWebsocketCommunicator(JWTAuthMiddleware(inner), "/ws/", token=make(user))
    assert await communicator.connect() == (False, code)
    assert not inner.called


async def test_rejection_close_message_is_still_receivable(inner: RecordingApp) -> None:
    communicator = JWTWebsocketCommunicator(JWTAuthMiddleware(inner), "/ws/", token="not-a-jwt")
    await communicator.connect()
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 4400,
        "reason": "token_malformed",
    }


async def greeting_app(scope: Any, receive: Any, send: Any) -> None:
    """Accepts and greets at once, then waits for the client to leave."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "welcome"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def test_app_that_sends_at_once_is_connected_and_the_frame_kept(user: Any) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(greeting_app), "/ws/", token=make_token(user)
    )
    assert await communicator.connect() == (True, "access_token")
    assert await communicator.receive_from() == "welcome"
    await communicator.disconnect()


async def test_app_closing_before_accept_is_not_connected(user: Any) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(RecordingApp(accept=False)), "/ws/", token=make_token(user)
    )
    assert await communicator.connect() == (False, 4000)


async def accept_then_close_without_code(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close"})


async def test_accept_then_close_without_a_code_reports_1000(user: Any) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(accept_then_close_without_code), "/ws/", token=make_token(user)
    )
    assert await communicator.connect() == (False, 1000)


def test_unknown_transport_is_a_value_error(inner: RecordingApp) -> None:
    with pytest.raises(ValueError, match="unknown transport 'carrier-pigeon'"):
        JWTWebsocketCommunicator(inner, "/ws/", token="abc", transport="carrier-pigeon")  # type: ignore[arg-type]
    # The half-built communicator must be collectable without an error: under
    # filterwarnings=error an exception in its __del__ fails the user's test.
    gc.collect()
