"""The middleware through channels' communicators: sources, scope, rejections, settings."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from channels_jwt import (
    JWTAuthMiddleware,
    JWTAuthMiddlewareStack,
)
from channels_jwt.users import token_user
from tests.harness import (
    ALL_SOURCES,
    LOGGER,
    PATH,
    Attempt,
    RecordingApp,
    Refusal,
    accepted_then_closed,
    always_revoked,
    channels_jwt_records,
    claims_for,
    close_message,
    crashing_resolver,
    expired,
    expired_token_for,
    hs_token,
    malformed,
    no_credential,
    offering,
    open_connection,
    rejection,
    revoked,
    token_for,
    unknown_user,
    websocket_scope,
    wrong_signature,
)

REJECTION_PREFIX = "WebSocket authentication failed:"


# Hooks and resolvers named by dotted path or passed as objects in the tests below.


async def yielding_token_user(claims: Any, scope: Any) -> Any:
    await asyncio.sleep(0)
    return await token_user(claims, scope)


# Helpers.


def rejection_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in channels_jwt_records(caplog)
        if record.getMessage().startswith(REJECTION_PREFIX)
    ]


# Success through each source.


@dataclass(frozen=True)
class Presented:
    """How a client presents a token, and what the inner app must see instead."""

    path: str
    subprotocols: list[str]
    headers: list[tuple[bytes, bytes]]
    inner_subprotocols: list[str]
    inner_query_string: bytes
    inner_headers: list[tuple[bytes, bytes]]
    accepted_subprotocol: str | None


def presented(source: str, token: str) -> Presented:
    """The token in ``source``, next to unrelated values the inner app must still see."""
    if source == "subprotocol":
        return Presented(
            path=f"{PATH}?room=lobby",
            subprotocols=["chat", "access_token", token],
            headers=[(b"sec-websocket-protocol", f"chat, access_token, {token}".encode())],
            inner_subprotocols=["chat"],
            inner_query_string=b"room=lobby",
            inner_headers=[(b"sec-websocket-protocol", b"chat")],
            accepted_subprotocol="access_token",
        )
    if source == "query":
        return Presented(
            path=f"{PATH}?room=lobby&token={token}",
            subprotocols=["chat"],
            headers=[],
            inner_subprotocols=["chat"],
            inner_query_string=b"room=lobby",
            inner_headers=[],
            accepted_subprotocol=None,
        )
    if source == "header":
        return Presented(
            path=PATH,
            subprotocols=[],
            headers=[(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
            inner_subprotocols=[],
            inner_query_string=b"",
            inner_headers=[(b"host", b"testserver")],
            accepted_subprotocol=None,
        )
    return Presented(
        path=PATH,
        subprotocols=[],
        headers=[
            (b"host", b"localhost"),
            (b"origin", b"http://localhost"),
            (b"cookie", f"theme=dark; jwt={token}; lang=en".encode()),
        ],
        inner_subprotocols=[],
        inner_query_string=b"",
        inner_headers=[
            (b"host", b"localhost"),
            (b"origin", b"http://localhost"),
            (b"cookie", b"theme=dark; lang=en"),
        ],
        accepted_subprotocol=None,
    )


SOURCES = ["subprotocol", "query", "header", "cookie"]


@pytest.mark.parametrize("source", SOURCES)
async def test_success_sets_user_and_jwt(source: str, user: Any, inner: RecordingApp) -> None:
    claims = claims_for(user.pk)
    token = hs_token(claims)
    way = presented(source, token)
    app = JWTAuthMiddleware(inner, settings=ALL_SOURCES)
    communicator, outcome = await open_connection(
        app, way.path, subprotocols=way.subprotocols, headers=way.headers
    )
    assert outcome == (True, way.accepted_subprotocol)
    (scope,) = inner.scopes
    assert scope["user"] == user
    assert scope["jwt"].claims == claims
    assert scope["jwt"].source == source
    assert scope["jwt"].expires_at == datetime.fromtimestamp(claims["exp"], tz=timezone.utc)
    await communicator.disconnect()


@pytest.mark.parametrize("source", SOURCES)
async def test_token_is_removed_from_the_inner_scope(
    source: str, user: Any, inner: RecordingApp
) -> None:
    token = token_for(user)
    way = presented(source, token)
    app = JWTAuthMiddleware(inner, settings=ALL_SOURCES)
    communicator, outcome = await open_connection(
        app, way.path, subprotocols=way.subprotocols, headers=way.headers
    )
    assert outcome[0] is True
    (scope,) = inner.scopes
    assert scope["subprotocols"] == way.inner_subprotocols
    assert scope["query_string"] == way.inner_query_string
    assert scope["headers"] == way.inner_headers
    assert token not in repr(scope)
    await communicator.disconnect()


async def test_expires_at_is_none_without_exp(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"REQUIRED_CLAIMS": []})
    communicator, outcome = await open_connection(
        app, subprotocols=["access_token", token_for(user, exp=...)]
    )
    assert outcome == (True, "access_token")
    assert inner.scopes[0]["jwt"].expires_at is None
    assert repr(inner.scopes[0]["jwt"]) == "<JWTConnection source='subprotocol' expires_at=None>"
    await communicator.disconnect()


async def test_stack_is_the_middleware(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddlewareStack(inner, settings={"QUERY_PARAM": "access"})
    assert isinstance(app, JWTAuthMiddleware)
    communicator, outcome = await open_connection(app, f"{PATH}?access={token_for(user)}")
    assert outcome == (True, None)
    assert inner.scopes[0]["user"] == user
    await communicator.disconnect()


async def test_concurrent_connections_through_one_instance_stay_apart(
    inner: RecordingApp,
) -> None:
    # The resolver yields to the loop, so the three handshakes interleave.
    app = JWTAuthMiddleware(inner, settings={"USER_RESOLVER": yielding_token_user})
    communicators = [
        WebsocketCommunicator(app, PATH, subprotocols=["access_token", hs_token(claims_for(pk))])
        for pk in (1, 2, 3)
    ]
    outcomes = await asyncio.gather(*(c.connect() for c in communicators))
    assert outcomes == [(True, "access_token")] * 3
    users = sorted((scope["user"].pk, scope["jwt"].claims["user_id"]) for scope in inner.scopes)
    assert users == [(1, "1"), (2, "2"), (3, "3")]
    await asyncio.gather(*(c.disconnect() for c in communicators))


# The accepted subprotocol.


async def test_marker_is_echoed_when_the_app_accepts_without_a_subprotocol(user: Any) -> None:
    inner = RecordingApp(subprotocol=None)
    communicator, outcome = await open_connection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
    )
    assert outcome == (True, "access_token")
    await communicator.disconnect()


async def test_app_choice_of_subprotocol_is_kept(user: Any) -> None:
    inner = RecordingApp(subprotocol="chat")
    communicator, outcome = await open_connection(
        JWTAuthMiddleware(inner), subprotocols=["chat", "access_token", token_for(user)]
    )
    assert outcome == (True, "chat")
    await communicator.disconnect()


async def test_no_subprotocol_is_invented_when_the_marker_was_not_offered(
    user: Any, inner: RecordingApp
) -> None:
    communicator, outcome = await open_connection(
        JWTAuthMiddleware(inner), f"{PATH}?token={token_for(user)}"
    )
    assert outcome == (True, None)
    await communicator.disconnect()


async def test_frames_pass_through_after_the_handshake(user: Any, inner: RecordingApp) -> None:
    communicator, _ = await open_connection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
    )
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"
    await communicator.disconnect()


# Scopes.


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param(
            {"type": "http", "path": "/", "query_string": b"token=abc", "headers": []}, id="http"
        ),
        pytest.param({"type": "lifespan", "asgi": {"version": "3.0"}}, id="lifespan"),
    ],
)
async def test_other_scope_types_pass_through_untouched(
    scope: dict[str, Any], inner: RecordingApp
) -> None:
    snapshot = copy.deepcopy(scope)
    communicator = ApplicationCommunicator(JWTAuthMiddleware(inner), scope)
    await communicator.wait()
    assert inner.scopes == [snapshot]
    assert inner.scopes[0] is scope


async def test_outer_scope_is_not_mutated(user: Any, inner: RecordingApp) -> None:
    token = token_for(user)
    scope = websocket_scope(
        query_string=f"room=lobby&token={token}".encode(),
        headers=[(b"origin", b"http://localhost")],
    )
    snapshot = copy.deepcopy(scope)
    communicator = ApplicationCommunicator(JWTAuthMiddleware(inner), scope)
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output() == {"type": "websocket.accept", "subprotocol": None}
    assert scope == snapshot
    assert inner.scopes[0] is not scope
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait()


# ALLOW_ANONYMOUS.


async def test_anonymous_connection_without_credential(inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"ALLOW_ANONYMOUS": True})
    communicator, outcome = await open_connection(app, subprotocols=["chat"])
    assert outcome == (True, None)
    (scope,) = inner.scopes
    assert isinstance(scope["user"], AnonymousUser)
    assert scope["jwt"] is None
    assert scope["subprotocols"] == ["chat"]
    await communicator.disconnect()


async def test_anonymous_connection_offering_the_marker_is_accepted_with_it(
    inner: RecordingApp,
) -> None:
    app = JWTAuthMiddleware(inner, settings={"ALLOW_ANONYMOUS": True})
    communicator, outcome = await open_connection(app, subprotocols=["access_token"])
    assert outcome == (True, "access_token")
    (scope,) = inner.scopes
    assert isinstance(scope["user"], AnonymousUser)
    assert scope["subprotocols"] == []
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("make_attempt", "refusal"),
    [
        pytest.param(malformed, Refusal(4400, "token_malformed", 401, None), id="malformed"),
        pytest.param(wrong_signature, Refusal(4401, "token_invalid", 401, None), id="invalid"),
        pytest.param(expired, Refusal(4440, "token_expired", 401, None), id="expired"),
    ],
)
async def test_anonymous_mode_still_closes_bad_credentials(
    make_attempt: Callable[[Any], Attempt], refusal: Refusal, user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner, settings={"ALLOW_ANONYMOUS": True})
    _, close = await rejection(app, subprotocols=make_attempt(user).subprotocols)
    assert close == close_message(refusal.code, refusal.reason)
    assert not inner.called


async def test_anonymous_connection_with_an_untrusted_cookie_loses_the_cookie(
    user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner, settings={**ALL_SOURCES, "ALLOW_ANONYMOUS": True})
    token = token_for(user)
    headers = [(b"origin", b"https://evil.example"), (b"cookie", f"jwt={token}".encode())]
    communicator, outcome = await open_connection(app, headers=headers)
    assert outcome == (True, None)
    (scope,) = inner.scopes
    assert isinstance(scope["user"], AnonymousUser)
    assert scope["headers"] == [(b"origin", b"https://evil.example")]
    await communicator.disconnect()


# Misconfiguration and unexpected errors.


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        pytest.param({"SIGNING_KEY": ""}, "channels_jwt.E006", id="no-signing-key"),
        pytest.param({"ALGORITHMS": ["none"]}, "channels_jwt.E004", id="alg-none"),
        pytest.param({"ALGORITHMS": ["HS256", "RS256"]}, "channels_jwt.E005", id="mixed-families"),
        pytest.param({"SIGNING_KEY": "short"}, "channels_jwt.E007", id="short-key"),
        pytest.param({"TOKEN_SOURCES": ["cookie"]}, "channels_jwt.E016", id="cookie-without-name"),
        pytest.param(
            {"USER_RESOLVER": "tests.nowhere.resolve"}, "channels_jwt.E017", id="resolver"
        ),
    ],
)
async def test_misconfiguration_closes_with_4503_and_logs_an_error(
    overrides: dict[str, Any],
    check_id: str,
    user: Any,
    inner: RecordingApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    app = JWTAuthMiddleware(inner, settings=overrides)
    subprotocol, close = await rejection(app, subprotocols=["access_token", token_for(user)])
    assert subprotocol == "access_token"
    assert close == close_message(4503, "auth_unavailable")
    assert not inner.called
    errors = [r for r in channels_jwt_records(caplog) if r.levelno == logging.ERROR]
    assert [r.getMessage().split(":")[0] for r in errors] == ["channels_jwt is misconfigured"]
    assert f"{check_id}:" in errors[0].getMessage()


@override_settings(CHANNELS_JWT="not a dict")
async def test_channels_jwt_that_is_not_a_dict_closes_with_4503(inner: RecordingApp) -> None:
    _, close = await rejection(JWTAuthMiddleware(inner))
    assert close == close_message(4503, "auth_unavailable")


async def test_unexpected_error_closes_with_4503_and_logs_the_traceback(
    inner: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    # A server bug: query_string as str instead of bytes.
    scope = websocket_scope(query_string="token=abc")  # type: ignore[arg-type]
    messages = await accepted_then_closed(JWTAuthMiddleware(inner), scope)
    assert messages == [
        {"type": "websocket.accept", "subprotocol": None},
        close_message(4503, "auth_unavailable"),
    ]
    (error,) = [r for r in channels_jwt_records(caplog) if r.levelno == logging.ERROR]
    assert error.getMessage() == (
        "WebSocket authentication error (TypeError); closing with auth_unavailable"
    )
    assert error.exc_info is not None
    assert not inner.called


# Logging.


@pytest.mark.parametrize(
    ("make_attempt", "expected"),
    [
        pytest.param(no_credential, "token_missing (no credential presented) code=4401 source=-"),
        pytest.param(malformed, "token_malformed (not a compact JWS) code=4400 source=subprotocol"),
        pytest.param(
            wrong_signature,
            "token_invalid (signature verification failed) code=4401 source=subprotocol",
        ),
        pytest.param(unknown_user, "user_rejected (user not found or inactive) code=4403"),
        pytest.param(expired, "token_expired (token expired) code=4440 source=subprotocol"),
        pytest.param(revoked, "token_revoked (token revoked) code=4441 source=subprotocol"),
    ],
)
async def test_one_info_line_per_rejection(
    make_attempt: Callable[[Any], Attempt],
    expected: str,
    user: Any,
    inner: RecordingApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings=attempt.settings)
    await accepted_then_closed(app, websocket_scope(subprotocols=attempt.subprotocols))
    (record,) = channels_jwt_records(caplog)
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith(f"{REJECTION_PREFIX} {expected}")
    assert message.endswith(f"path={PATH} client=127.0.0.1:5000")
    for offered in attempt.subprotocols[1:]:
        assert offered not in caplog.text


async def test_server_side_rejection_is_logged_at_info_with_a_warning_of_its_cause(
    user: Any, inner: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    app = JWTAuthMiddleware(inner, settings={"USER_RESOLVER": crashing_resolver})
    scope = websocket_scope(subprotocols=["access_token", token_for(user)])
    await accepted_then_closed(app, scope)
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "WebSocket authentication unavailable: user lookup failed (RuntimeError)"
    ]
    (record,) = rejection_lines(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"{REJECTION_PREFIX} auth_unavailable (user lookup failed (RuntimeError)) code=4503 "
        f"source=subprotocol path={PATH} client=127.0.0.1:5000"
    )


async def test_log_line_never_has_the_token_or_the_query_string(
    user: Any, inner: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = expired_token_for(user)
    scope = websocket_scope(query_string=f"room=secret-room&token={token}".encode())
    await accepted_then_closed(JWTAuthMiddleware(inner), scope)
    (record,) = rejection_lines(caplog)
    assert "source=query" in record.getMessage()
    assert token not in caplog.text
    assert "secret-room" not in caplog.text
    assert "?" not in record.getMessage()


@pytest.mark.parametrize(
    ("client", "shown"),
    [
        pytest.param(("10.0.0.7", 41000), "client=10.0.0.7:41000", id="host-and-port"),
        pytest.param(("/run/app.sock",), "client=/run/app.sock", id="host-only"),
        pytest.param(None, "client=-", id="none"),
    ],
)
async def test_log_line_shows_the_client(
    client: tuple[Any, ...] | None,
    shown: str,
    inner: RecordingApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    await accepted_then_closed(JWTAuthMiddleware(inner), websocket_scope(client=client))
    (record,) = rejection_lines(caplog)
    assert record.getMessage().endswith(shown)


# Database queries: none for anything rejected before the user lookup.


async def _close_code(app: Any, subprotocols: list[str]) -> Any:
    communicator = WebsocketCommunicator(app, PATH, subprotocols=subprotocols)
    connected, detail = await communicator.connect()
    if connected:
        closed = not await communicator.receive_nothing()
        detail = (await communicator.receive_output())["code"] if closed else "accepted"
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait()
    return detail


def no_jti(user: Any) -> Attempt:
    return offering(token_for(user, jti=...), REVOCATION_CHECK=always_revoked)


def refresh_token(user: Any) -> Attempt:
    return offering(token_for(user, token_type="refresh"))


def oversized(user: Any) -> Attempt:
    return offering("a" * 9000)


@pytest.mark.parametrize(
    ("make_attempt", "code", "query_count"),
    [
        pytest.param(no_credential, 4401, 0, id="missing"),
        pytest.param(malformed, 4400, 0, id="malformed"),
        pytest.param(oversized, 4400, 0, id="oversized"),
        pytest.param(wrong_signature, 4401, 0, id="bad-signature"),
        pytest.param(refresh_token, 4401, 0, id="wrong-type"),
        pytest.param(no_jti, 4401, 0, id="jti-missing"),
        pytest.param(expired, 4440, 0, id="expired"),
        pytest.param(revoked, 4441, 0, id="revoked"),
        pytest.param(lambda user: offering(token_for(user)), "accepted", 1, id="accepted"),
        pytest.param(unknown_user, 4403, 1, id="unknown-user"),
    ],
)
def test_database_is_queried_only_by_the_user_lookup(
    make_attempt: Callable[[Any], Attempt],
    code: Any,
    query_count: int,
    user: Any,
    inner: RecordingApp,
) -> None:
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings=attempt.settings)
    with CaptureQueriesContext(connection) as queries:
        outcome = async_to_sync(_close_code)(app, attempt.subprotocols)
    assert outcome == code
    assert len(queries) == query_count


async def test_a_forged_path_cannot_forge_or_colour_the_rejection_line(
    inner: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    # Servers percent-decode the path: /ws/%0D%0A... reaches the scope as CR LF.
    caplog.set_level(logging.INFO, logger=LOGGER)
    forged = f"{REJECTION_PREFIX} token_expired (forged) code=4440"
    path = f"/ws/\r\n{forged}\x1b[2J"
    await accepted_then_closed(JWTAuthMiddleware(inner), websocket_scope(path))
    (record,) = channels_jwt_records(caplog)
    message = record.getMessage()
    assert not {"\r", "\n", "\x1b"} & set(message)
    assert f"path=/ws/\\r\\n{forged}\\x1b[2J client=" in message
