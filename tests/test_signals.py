"""Signals (``channels_jwt.signals``): ``authenticated``, ``authentication_failed``, and
receivers that raise."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model
from django.dispatch import Signal

from channels_jwt import (
    JWTAuthMiddleware,
    TokenExpired,
    TokenMalformed,
    signals,
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
    timed_handshake,
    token_for,
    warnings_of,
    websocket_scope,
)

User = get_user_model()


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


# Receivers never hold up a handshake (issue 14, item 7).


@contextmanager
def slow_failure_receiver(seconds: float, threads: list[str]) -> Iterator[None]:
    """An ``authentication_failed`` receiver that uses the ORM and takes ``seconds``."""

    def receiver(**kwargs: Any) -> None:
        threads.append(threading.current_thread().name)
        User.objects.filter(pk=-1).exists()
        time.sleep(seconds)

    with connected(authentication_failed, receiver, "tests.slow"):
        yield


async def test_receivers_run_on_threads_of_their_own(user: Any, inner: RecordingApp) -> None:
    names: list[str] = []

    def receiver(**kwargs: Any) -> None:
        names.append(threading.current_thread().name)

    with (
        connected(authenticated, receiver, "tests.a"),
        connected(authentication_failed, receiver, "tests.f"),
    ):
        communicator, _ = await open_connection(
            JWTAuthMiddleware(inner), subprotocols=["access_token", token_for(user)]
        )
        await communicator.disconnect()
        await rejection(JWTAuthMiddleware(inner), subprotocols=["access_token", "garbage"])

    assert [name.rsplit("_", 1)[0] for name in names] == [
        "channels_jwt-authenticated",
        "channels_jwt-authentication_failed",
    ]


@pytest.mark.django_db(transaction=True)
async def test_a_flood_of_failures_with_a_slow_receiver_does_not_delay_a_lookup(
    inner: RecordingApp,
) -> None:
    # With the receivers in Channels' database thread, the good handshake's user lookup
    # queued behind 20 x 0.1 s of receivers: it took 2 s, and with a shorter
    # AUTH_TIMEOUT_SECONDS it got 4503.
    user = await User.objects.acreate(username="flood-survivor")
    app = JWTAuthMiddleware(inner, settings={"AUTH_TIMEOUT_SECONDS": 1})
    threads: list[str] = []
    garbage = [websocket_scope(subprotocols=["access_token", f"garbage{i}"]) for i in range(20)]
    with slow_failure_receiver(0.1, threads):
        flood = [asyncio.ensure_future(timed_handshake(app, scope, timeout=5)) for scope in garbage]
        await asyncio.sleep(0.05)  # the first receivers are running
        good = websocket_scope(subprotocols=["access_token", token_for(user)])
        communicator = ApplicationCommunicator(app, good)
        started = time.monotonic()
        await communicator.send_input({"type": "websocket.connect"})
        accept = await communicator.receive_output(2)
        waited = time.monotonic() - started
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(2)
        closes = await asyncio.gather(*flood)

    assert accept == {"type": "websocket.accept", "subprotocol": "access_token"}
    assert waited < 0.5
    # Every garbage handshake was closed before its receiver finished.
    assert all(messages[-1]["code"] == 4400 and elapsed < 0.5 for messages, elapsed in closes)
    assert len(threads) == 20


async def test_a_4503_arrives_within_the_timeout_whatever_the_receivers_take(
    inner: RecordingApp, transactional_db: None
) -> None:
    async def hanging_resolver(claims: Any, scope: Any) -> Any:
        await asyncio.sleep(10)

    app = JWTAuthMiddleware(
        inner, settings={"USER_RESOLVER": hanging_resolver, "AUTH_TIMEOUT_SECONDS": 0.3}
    )
    threads: list[str] = []
    with slow_failure_receiver(1.0, threads):
        communicator = ApplicationCommunicator(
            app, websocket_scope(subprotocols=["access_token", token_for(1)])
        )
        started = time.monotonic()
        await communicator.send_input({"type": "websocket.connect"})
        messages = [await communicator.receive_output(2), await communicator.receive_output(2)]
        elapsed = time.monotonic() - started
        await communicator.wait(3)

    assert messages[1] == close_message(4503, "auth_unavailable")
    assert 0.3 <= elapsed < 0.8
    assert len(threads) == 1


async def test_signals_beyond_the_pending_bound_are_dropped_and_counted(
    inner: RecordingApp,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    transactional_db: None,
) -> None:
    # (The database: the receivers' thread tidies its connection, which an earlier test's
    # receiver opened and an in-memory SQLite database never closes.)
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr(signals, "MAX_PENDING", 2)
    release = threading.Event()
    received: list[str] = []

    def blocking_receiver(**kwargs: Any) -> None:
        release.wait(5)
        received.append(kwargs["reason"])

    monkeypatch.setattr(signals.send_authentication_failed, "dropped", 0)
    app = JWTAuthMiddleware(inner)
    with connected(authentication_failed, blocking_receiver, "tests.blocking"):
        scope = websocket_scope(subprotocols=["access_token", "x"])
        flood = [
            asyncio.ensure_future(timed_handshake(app, dict(scope), timeout=5)) for _ in range(12)
        ]
        # Two handshakes wait for the blocked receiver; the other ten drop their signal.
        finished: set[asyncio.Future[Any]] = set()
        waiting: set[asyncio.Future[Any]] = set(flood)
        while len(finished) < 10:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finished |= done
        release.set()
        await asyncio.gather(*flood)

    assert received == ["token_malformed"] * 2
    assert signals.send_authentication_failed.dropped == 10
    dropped = [m for m in warnings_of(caplog) if "cannot keep up" in m]
    assert dropped == [
        "channels_jwt authentication_failed receivers cannot keep up: 1 signals dropped so far",
        "channels_jwt authentication_failed receivers cannot keep up: 10 signals dropped so far",
    ]
