"""The middleware through channels' communicators: sources, scope, rejections, settings."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.dispatch import Signal
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from channels_jwt import (
    AuthenticationFailed,
    CloseCode,
    JWTAuthMiddleware,
    JWTAuthMiddlewareStack,
    TokenExpired,
    TokenMalformed,
    UserRejected,
)
from channels_jwt.signals import authenticated, authentication_failed
from channels_jwt.users import TokenUser, token_user
from tests.conftest import RecordingApp, claims_for, hs_token, websocket_scope

PATH = "/ws/chat/"
OTHER_KEY = "another-key-that-is-long-enough-for-hs256-0123456789"
INVALID_TOKEN = b'Bearer error="invalid_token"'
ALL_SOURCES = {"TOKEN_SOURCES": ["subprotocol", "query", "header", "cookie"], "COOKIE_NAME": "jwt"}
LOGGER = "channels_jwt"
REJECTION_PREFIX = "WebSocket authentication failed:"


# Hooks and resolvers named by dotted path or passed as objects in the tests below.


class RateLimited(AuthenticationFailed):
    """A resolver-side refusal with the 4429 code (the opt-in rate limit's code)."""

    close_code = CloseCode.RATE_LIMITED
    reason = "rate_limited"


class VerboseRejection(UserRejected):
    """A rejection whose reason is longer than a close frame allows (200 UTF-8 bytes)."""

    reason = "é" * 100


async def crashing_resolver(claims: Any, scope: Any) -> Any:
    raise RuntimeError("database is down")


async def resolver_finding_nobody(claims: Any, scope: Any) -> Any:
    return None


async def refusing_resolver(claims: Any, scope: Any) -> Any:
    raise UserRejected("refused by the project's resolver")


async def rate_limiting_resolver(claims: Any, scope: Any) -> Any:
    raise RateLimited("too many attempts")


async def verbose_resolver(claims: Any, scope: Any) -> Any:
    raise VerboseRejection("long reason")


async def yielding_token_user(claims: Any, scope: Any) -> Any:
    await asyncio.sleep(0)
    return await token_user(claims, scope)


async def always_revoked(claims: Any) -> bool:
    return True


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


# Helpers.


def token_for(user: Any, **claims: Any) -> str:
    """A valid HS256 access token for ``user`` (claims override or, with ``...``, drop)."""
    return hs_token(claims_for(user.pk, **claims))


def expired_token_for(user: Any) -> str:
    now = int(time.time())
    return token_for(user, iat=now - 600, exp=now - 300)


async def accepted_then_closed(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``websocket.connect`` and return what the app sends until it finishes."""
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    messages = [await communicator.receive_output()]
    while messages[-1]["type"] == "websocket.accept":
        messages.append(await communicator.receive_output())
    await communicator.wait()
    return messages


async def open_connection(
    app: Any, path: str = PATH, **kwargs: Any
) -> tuple[WebsocketCommunicator, tuple[bool, Any]]:
    communicator = WebsocketCommunicator(app, path, **kwargs)
    return communicator, await communicator.connect()


async def rejection(app: Any, path: str = PATH, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Connect, expect accept-then-close; return the accepted subprotocol and the close."""
    communicator, (connected, subprotocol) = await open_connection(app, path, **kwargs)
    assert connected
    close = await communicator.receive_output()
    await communicator.wait()
    return subprotocol, close


def close_message(code: int, reason: str) -> dict[str, Any]:
    return {"type": "websocket.close", "code": code, "reason": reason}


@contextmanager
def receiving(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    """Collect the keyword arguments of every ``signal`` sent while the block runs."""
    calls: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(kwargs)

    signal.connect(receiver, weak=False, dispatch_uid="tests.receiving")
    try:
        yield calls
    finally:
        signal.disconnect(dispatch_uid="tests.receiving")


@contextmanager
def raising_receiver(signal: Signal) -> Iterator[None]:
    def receiver(**kwargs: Any) -> None:
        raise ValueError("receiver failed")

    signal.connect(receiver, weak=False, dispatch_uid="tests.raising")
    try:
        yield
    finally:
        signal.disconnect(dispatch_uid="tests.raising")


def channels_jwt_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER]


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
            (b"origin", b"http://localhost"),
            (b"cookie", f"theme=dark; jwt={token}; lang=en".encode()),
        ],
        inner_subprotocols=[],
        inner_query_string=b"",
        inner_headers=[(b"origin", b"http://localhost"), (b"cookie", b"theme=dark; lang=en")],
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


async def test_jwt_claims_are_read_only(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner)
    communicator, _ = await open_connection(app, subprotocols=["access_token", token_for(user)])
    with pytest.raises(TypeError):
        inner.scopes[0]["jwt"].claims["user_id"] = "2"  # type: ignore[index]
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


# Every close code, in each rejection mode.


@dataclass(frozen=True)
class Attempt:
    """What a client offers, and the per-instance settings of the middleware it meets."""

    subprotocols: list[str]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    code: int
    reason: str
    status: int
    challenge: bytes | None


def offering(token: str, **settings: Any) -> Attempt:
    return Attempt(["access_token", token], settings)


def no_credential(user: Any) -> Attempt:
    return Attempt([])


def malformed(user: Any) -> Attempt:
    return offering("not-a-jwt")


def wrong_signature(user: Any) -> Attempt:
    return offering(hs_token(claims_for(user.pk), key=OTHER_KEY))


def expired(user: Any) -> Attempt:
    return offering(expired_token_for(user))


def unknown_user(user: Any) -> Attempt:
    return offering(hs_token(claims_for(user.pk + 1000)))


def revoked(user: Any) -> Attempt:
    return offering(token_for(user), REVOCATION_CHECK=always_revoked)


def lookup_crashes(user: Any) -> Attempt:
    return offering(token_for(user), USER_RESOLVER=crashing_resolver)


def rate_limited(user: Any) -> Attempt:
    return offering(token_for(user), USER_RESOLVER=rate_limiting_resolver)


REJECTIONS = [
    pytest.param(no_credential, Refusal(4401, "token_missing", 401, b"Bearer"), id="4401-missing"),
    pytest.param(malformed, Refusal(4400, "token_malformed", 401, INVALID_TOKEN), id="4400"),
    pytest.param(wrong_signature, Refusal(4401, "token_invalid", 401, INVALID_TOKEN), id="4401"),
    pytest.param(unknown_user, Refusal(4403, "user_rejected", 403, None), id="4403"),
    pytest.param(rate_limited, Refusal(4429, "rate_limited", 429, None), id="4429"),
    pytest.param(expired, Refusal(4440, "token_expired", 401, INVALID_TOKEN), id="4440"),
    pytest.param(revoked, Refusal(4441, "token_revoked", 401, INVALID_TOKEN), id="4441"),
    pytest.param(lookup_crashes, Refusal(4503, "auth_unavailable", 503, None), id="4503"),
]


@pytest.mark.parametrize(("make_attempt", "refusal"), REJECTIONS)
async def test_close_mode_accepts_then_closes_with_the_code(
    make_attempt: Callable[[Any], Attempt], refusal: Refusal, user: Any, inner: RecordingApp
) -> None:
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings=attempt.settings)
    subprotocol, close = await rejection(app, subprotocols=attempt.subprotocols)
    assert subprotocol == ("access_token" if attempt.subprotocols else None)
    assert close == close_message(refusal.code, refusal.reason)
    assert not inner.called


@pytest.mark.parametrize(("make_attempt", "refusal"), REJECTIONS)
async def test_deny_mode_answers_http_where_the_server_supports_it(
    make_attempt: Callable[[Any], Attempt], refusal: Refusal, user: Any, inner: RecordingApp
) -> None:
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings={**attempt.settings, "REJECT_MODE": "deny"})
    scope = websocket_scope(
        subprotocols=attempt.subprotocols, extensions={"websocket.http.response": {}}
    )
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output()
    body = await communicator.receive_output()
    await communicator.wait()
    expected_body = f'{{"code": {refusal.code}, "reason": "{refusal.reason}"}}'.encode()
    expected_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(expected_body)).encode()),
    ]
    if refusal.challenge is not None:
        expected_headers.append((b"www-authenticate", refusal.challenge))
    assert start == {
        "type": "websocket.http.response.start",
        "status": refusal.status,
        "headers": expected_headers,
    }
    assert body == {"type": "websocket.http.response.body", "body": expected_body}
    assert await communicator.receive_nothing()
    assert not inner.called


@pytest.mark.parametrize(("make_attempt", "refusal"), REJECTIONS)
async def test_deny_mode_closes_before_accept_without_the_extension(
    make_attempt: Callable[[Any], Attempt], refusal: Refusal, user: Any, inner: RecordingApp
) -> None:
    attempt = make_attempt(user)
    app = JWTAuthMiddleware(inner, settings={**attempt.settings, "REJECT_MODE": "deny"})
    messages = await accepted_then_closed(app, websocket_scope(subprotocols=attempt.subprotocols))
    assert messages == [close_message(refusal.code, refusal.reason)]
    assert not inner.called


async def test_deny_mode_through_the_websocket_communicator(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"REJECT_MODE": "deny"})
    _, outcome = await open_connection(app, subprotocols=["access_token", expired_token_for(user)])
    assert outcome == (False, 4440)


async def test_rejection_waits_for_connect_and_ignores_an_early_disconnect(
    inner: RecordingApp,
) -> None:
    communicator = ApplicationCommunicator(JWTAuthMiddleware(inner), websocket_scope())
    await communicator.send_input({"type": "websocket.disconnect", "code": 1001})
    await communicator.wait()
    assert await communicator.receive_nothing()
    assert not inner.called


async def test_rejection_accepts_with_a_non_token_subprotocol_when_no_marker(
    inner: RecordingApp,
) -> None:
    subprotocol, close = await rejection(JWTAuthMiddleware(inner), subprotocols=["chat.v2"])
    assert subprotocol == "chat.v2"
    assert close == close_message(4401, "token_missing")


@pytest.mark.parametrize(
    "offered",
    [
        pytest.param(["eyJhbGciOiJIUzI1NiJ9.e30.sig"], id="jwt-shaped"),
        pytest.param(["x" * 65], id="longer-than-64"),
    ],
)
async def test_rejection_never_echoes_what_may_be_a_token(
    offered: list[str], inner: RecordingApp
) -> None:
    subprotocol, close = await rejection(JWTAuthMiddleware(inner), subprotocols=offered)
    assert subprotocol is None
    assert close == close_message(4401, "token_missing")


async def test_rejection_skips_token_like_subprotocols_for_the_next_one(
    inner: RecordingApp,
) -> None:
    offered = ["eyJhbGciOiJIUzI1NiJ9.e30.sig", "chat"]
    subprotocol, _ = await rejection(JWTAuthMiddleware(inner), subprotocols=offered)
    assert subprotocol == "chat"


async def test_rejection_echoes_the_marker_for_ambiguous_credentials(
    user: Any, inner: RecordingApp
) -> None:
    token = token_for(user)
    subprotocol, close = await rejection(
        JWTAuthMiddleware(inner), f"{PATH}?token={token}", subprotocols=["access_token", token]
    )
    assert subprotocol == "access_token"
    assert close == close_message(4400, "token_malformed")


async def test_reason_is_capped_at_123_bytes(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"USER_RESOLVER": verbose_resolver})
    _, close = await rejection(app, subprotocols=["access_token", token_for(user)])
    assert close == close_message(4403, "é" * 61)


async def test_close_codes_override_the_code_for_a_reason(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"CLOSE_CODES": {"token_expired": 4001}})
    _, close = await rejection(app, subprotocols=["access_token", expired_token_for(user)])
    assert close == close_message(4001, "token_expired")


async def test_close_codes_leave_other_reasons_alone(inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner, settings={"CLOSE_CODES": {"token_expired": 4001}})
    _, close = await rejection(app, subprotocols=["access_token", "not-a-jwt"])
    assert close == close_message(4400, "token_malformed")


async def test_close_codes_override_decides_the_deny_status(inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(
        inner, settings={"REJECT_MODE": "deny", "CLOSE_CODES": {"token_missing": 4403}}
    )
    scope = websocket_scope(extensions={"websocket.http.response": {}})
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output()
    await communicator.receive_output()
    await communicator.wait()
    assert start["status"] == 403


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


# Cookies count only from a trusted Origin.


@pytest.mark.parametrize(
    ("origin", "extra_settings"),
    [
        pytest.param(b"http://localhost", {}, id="allowed-host"),
        pytest.param(b"https://testserver:8443", {}, id="allowed-host-with-port"),
        pytest.param(
            b"https://app.example.com",
            {"CSRF_TRUSTED_ORIGINS": ["https://app.example.com"]},
            id="csrf-trusted-origin",
        ),
        pytest.param(
            b"https://eu.example.com",
            {"CSRF_TRUSTED_ORIGINS": ["http://eu.example.com", "https://*.example.com"]},
            id="csrf-trusted-wildcard",
        ),
        pytest.param(b"http://localhost", {"DEBUG": True, "ALLOWED_HOSTS": []}, id="debug"),
    ],
)
async def test_cookie_from_trusted_origin_authenticates(
    origin: bytes,
    extra_settings: dict[str, Any],
    user: Any,
    inner: RecordingApp,
    settings: Any,
) -> None:
    for name, value in extra_settings.items():
        setattr(settings, name, value)
    app = JWTAuthMiddleware(inner, settings=ALL_SOURCES)
    headers = [(b"origin", origin), (b"cookie", f"jwt={token_for(user)}".encode())]
    communicator, outcome = await open_connection(app, headers=headers)
    assert outcome == (True, None)
    assert inner.scopes[0]["jwt"].source == "cookie"
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("origin", "extra_settings"),
    [
        pytest.param(None, {}, id="no-origin"),
        pytest.param(b"https://evil.example", {}, id="foreign"),
        pytest.param(b"null", {}, id="null"),
        pytest.param(b"http://[::1", {}, id="unparsable"),
        pytest.param(b"ftp://localhost", {}, id="not-http"),
        pytest.param(b"https://evil.example", {"ALLOWED_HOSTS": ["*"]}, id="star-host"),
        pytest.param(
            b"https://evil.example",
            {"CSRF_TRUSTED_ORIGINS": ["https://app.example.com"]},
            id="not-csrf-trusted",
        ),
        pytest.param(
            b"http://app.example.com",
            {"CSRF_TRUSTED_ORIGINS": ["https://app.example.com"]},
            id="csrf-trusted-other-scheme",
        ),
        pytest.param(b"http://localhost", {"DEBUG": False, "ALLOWED_HOSTS": []}, id="no-hosts"),
    ],
)
async def test_cookie_from_untrusted_origin_counts_as_absent(
    origin: bytes | None,
    extra_settings: dict[str, Any],
    user: Any,
    inner: RecordingApp,
    settings: Any,
) -> None:
    for name, value in extra_settings.items():
        setattr(settings, name, value)
    app = JWTAuthMiddleware(inner, settings=ALL_SOURCES)
    headers = [(b"cookie", f"jwt={token_for(user)}".encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    _, close = await rejection(app, headers=headers)
    assert close == close_message(4401, "token_missing")


# REVOCATION_CHECK.

REVOCATION_HOOKS = [
    pytest.param("tests.test_middleware.revoked_if_flagged_async", id="async-dotted-path"),
    pytest.param("tests.test_middleware.revoked_if_flagged_sync", id="sync-dotted-path"),
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


# The user resolver.


@pytest.mark.parametrize(
    ("resolver", "expected"),
    [
        pytest.param(crashing_resolver, close_message(4503, "auth_unavailable"), id="raises"),
        pytest.param(resolver_finding_nobody, close_message(4403, "user_rejected"), id="none"),
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


# Signals.


async def test_authenticated_signal(user: Any, inner: RecordingApp) -> None:
    claims = claims_for(user.pk)
    token = hs_token(claims)
    with receiving(authenticated) as calls:
        communicator, outcome = await open_connection(
            JWTAuthMiddleware(inner), subprotocols=["access_token", token]
        )
    assert outcome == (True, "access_token")
    (call,) = calls
    assert set(call) == {"signal", "sender", "scope", "user", "claims", "source"}
    assert call["sender"] is JWTAuthMiddleware
    assert call["user"] == user
    assert call["claims"] == claims
    assert call["source"] == "subprotocol"
    assert call["scope"] is inner.scopes[0]
    assert token not in repr(call)
    await communicator.disconnect()


async def test_no_authenticated_signal_for_anonymous_connections(inner: RecordingApp) -> None:
    with receiving(authenticated) as calls:
        communicator, outcome = await open_connection(
            JWTAuthMiddleware(inner, settings={"ALLOW_ANONYMOUS": True})
        )
    assert outcome == (True, None)
    assert calls == []
    await communicator.disconnect()


async def test_authentication_failed_signal(user: Any, inner: RecordingApp) -> None:
    token = expired_token_for(user)
    with receiving(authentication_failed) as calls:
        await rejection(
            JWTAuthMiddleware(inner),
            f"{PATH}?room=lobby&token={token}",
            headers=[(b"host", b"testserver")],
        )
    (call,) = calls
    assert set(call) == {"signal", "sender", "scope", "reason", "close_code", "source", "error"}
    assert call["sender"] is JWTAuthMiddleware
    assert (call["reason"], call["close_code"], call["source"]) == ("token_expired", 4440, "query")
    assert isinstance(call["error"], TokenExpired)
    assert call["scope"]["query_string"] == b"room=lobby"
    assert call["scope"]["path"] == PATH
    assert token not in repr(call)


async def test_authentication_failed_signal_scope_is_scrubbed_when_extraction_fails(
    user: Any, inner: RecordingApp
) -> None:
    token = token_for(user)
    headers = [
        (b"host", b"testserver"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"Cookie", f"jwt={token}".encode()),
        (b"sec-websocket-protocol", f"access_token, {token}".encode()),
    ]
    with receiving(authentication_failed) as calls:
        _, close = await rejection(
            JWTAuthMiddleware(inner, settings=ALL_SOURCES),
            f"{PATH}?token={token}",
            headers=headers,
            subprotocols=["access_token", token],
        )
    assert close == close_message(4400, "token_malformed")
    (call,) = calls
    assert call["source"] is None
    assert isinstance(call["error"], TokenMalformed)
    assert call["scope"]["subprotocols"] == []
    assert call["scope"]["query_string"] == b""
    assert call["scope"]["headers"] == [(b"host", b"testserver")]
    assert token not in repr(call)


async def test_authentication_failed_signal_when_misconfigured(
    inner: RecordingApp, transactional_db: None
) -> None:
    with receiving(authentication_failed) as calls:
        await accepted_then_closed(
            JWTAuthMiddleware(inner, settings={"SIGNING_KEY": ""}),
            websocket_scope(headers=[(b"authorization", b"Bearer abc")]),
        )
    (call,) = calls
    assert (call["reason"], call["close_code"], call["source"]) == ("auth_unavailable", 4503, None)
    assert call["scope"]["headers"] == [(b"host", b"testserver")]


async def test_raising_authenticated_receiver_does_not_change_the_outcome(
    user: Any, inner: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with raising_receiver(authenticated):
        communicator, outcome = await open_connection(
            JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
        )
    assert outcome == (True, "access_token")
    assert inner.scopes[0]["user"] == user
    (record,) = channels_jwt_records(caplog)
    assert record.levelno == logging.ERROR
    assert "of a channels_jwt signal raised ValueError" in record.getMessage()
    await communicator.disconnect()


async def test_raising_authentication_failed_receiver_does_not_change_the_outcome(
    user: Any, inner: RecordingApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with raising_receiver(authentication_failed):
        _, close = await rejection(
            JWTAuthMiddleware(inner), subprotocols=["access_token", expired_token_for(user)]
        )
    assert close == close_message(4440, "token_expired")
    errors = [r for r in channels_jwt_records(caplog) if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "of a channels_jwt signal raised ValueError" in errors[0].getMessage()


# Settings: override_settings and per-instance overrides.


async def test_override_settings_changes_a_running_middleware(
    user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(inner)
    token = token_for(user)
    _, close = await rejection(app, f"{PATH}?jwt={token}")
    assert close == close_message(4401, "token_missing")
    with override_settings(CHANNELS_JWT={**django_settings.CHANNELS_JWT, "QUERY_PARAM": "jwt"}):
        communicator, outcome = await open_connection(app, f"{PATH}?jwt={token}")
        assert outcome == (True, None)
        await communicator.disconnect()
    _, close = await rejection(app, f"{PATH}?jwt={token}")
    assert close == close_message(4401, "token_missing")


@override_settings(CHANNELS_JWT={**django_settings.CHANNELS_JWT, "TOKEN_SOURCES": ["header"]})
async def test_override_settings_token_sources_header_only(user: Any, inner: RecordingApp) -> None:
    _, close = await rejection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
    )
    assert close == close_message(4401, "token_missing")


@override_settings(CHANNELS_JWT={**django_settings.CHANNELS_JWT, "TOKEN_SOURCES": "header"})
async def test_token_sources_may_be_a_single_string(user: Any, inner: RecordingApp) -> None:
    headers = [(b"authorization", f"Bearer {token_for(user)}".encode())]
    communicator, outcome = await open_connection(JWTAuthMiddleware(inner), headers=headers)
    assert outcome == (True, None)
    assert inner.scopes[0]["jwt"].source == "header"
    await communicator.disconnect()


async def test_default_token_sources_take_the_subprotocol(user: Any, inner: RecordingApp) -> None:
    communicator, outcome = await open_connection(
        JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
    )
    assert outcome == (True, "access_token")
    await communicator.disconnect()


async def test_per_instance_settings_apply_to_that_instance_only(
    user: Any, inner: RecordingApp
) -> None:
    token = token_for(user)
    custom = JWTAuthMiddleware(inner, settings={"QUERY_PARAM": "jwt"})
    default = JWTAuthMiddleware(inner)
    communicator, outcome = await open_connection(custom, f"{PATH}?jwt={token}")
    assert outcome == (True, None)
    await communicator.disconnect()
    _, close = await rejection(default, f"{PATH}?jwt={token}")
    assert close == close_message(4401, "token_missing")
    _, close = await rejection(custom, f"{PATH}?token={token}")
    assert close == close_message(4401, "token_missing")


async def test_per_instance_settings_reach_the_database_resolver(
    user: Any, inner: RecordingApp
) -> None:
    app = JWTAuthMiddleware(
        inner, settings={"USER_ID_CLAIM": "username", "USER_ID_FIELD": "username"}
    )
    claims = claims_for(user.pk, username="alice")
    del claims["user_id"]
    token = hs_token(claims)
    communicator, outcome = await open_connection(app, subprotocols=["access_token", token])
    assert outcome == (True, "access_token")
    assert inner.scopes[0]["user"] == user
    await communicator.disconnect()


async def test_per_instance_settings_sit_on_top_of_global_settings(
    user: Any, inner: RecordingApp, settings: Any
) -> None:
    settings.CHANNELS_JWT = {**settings.CHANNELS_JWT, "QUERY_PARAM": "jwt"}
    app = JWTAuthMiddleware(inner, settings={"TOKEN_SOURCES": ["query"]})
    communicator, outcome = await open_connection(app, f"{PATH}?jwt={token_for(user)}")
    assert outcome == (True, None)
    await communicator.disconnect()


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
