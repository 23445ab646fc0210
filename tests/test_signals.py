"""Signals (``channels_jwt.signals``): ``authenticated``, ``authentication_failed``, and
receivers that raise."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.dispatch import Signal

from channels_jwt import (
    JWTAuthMiddleware,
    TokenExpired,
    TokenMalformed,
)
from channels_jwt.signals import authenticated, authentication_failed
from tests.harness import (
    ALL_SOURCES,
    LOGGER,
    PATH,
    RecordingApp,
    accepted_then_closed,
    channels_jwt_records,
    claims_for,
    close_message,
    connected,
    expired_token_for,
    hs_token,
    open_connection,
    receiving,
    rejection,
    token_for,
    websocket_scope,
)


@contextmanager
def raising_receiver(signal: Signal) -> Iterator[None]:
    def receiver(**kwargs: Any) -> None:
        raise ValueError("receiver failed")

    with connected(signal, receiver, "tests.raising"):
        yield


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
