"""Faults behind the handshake: lookups that hang, crash or lose their database; bad receivers.

Each fault is injected into the real pipeline (real tokens, real ``database_user`` on the
test database, whose server really stops when the suite runs on PostgreSQL), and each test
checks the same three promises: the client gets 4503 ``auth_unavailable`` in bounded time, the
inner application never runs (no anonymous fallback either), and nothing the server logs
carries the token or a traceback. A signal receiver that raises must leave the outcome of the
handshake as it was.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import OperationalError, connection, connections
from django.dispatch import Signal

from channels_jwt import ChannelsJWTError, JWTAuthMiddleware
from channels_jwt.signals import authenticated, authentication_failed
from channels_jwt.users import token_user
from tests.harness import (
    MARKER,
    RecordingApp,
    channels_jwt_records,
    claims_for,
    connected,
    expired_token_for,
    finding_nobody,
    hs_token,
    never_revoked,
    receiving,
    timed_handshake,
    token_for,
    warnings_of,
    websocket_scope,
)
from tests.postgres.server import PostgresServer

# Every test may run code in channels' database thread, whose ``close_old_connections`` touches
# the connection an earlier test opened there: database access must be allowed throughout.
pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/faults/"
#: The ``AUTH_TIMEOUT_SECONDS`` of these tests: short, so a hang costs the suite little.
AUTH_TIMEOUT = 0.3
#: How late after ``AUTH_TIMEOUT`` the close may come: a few loop and thread hand-offs take
#: milliseconds, but CI runs this under coverage on shared cores. (Unbounded would be forever.)
MARGIN = 1.0
#: Seconds any single communicator step may take.
STEP_TIMEOUT = 5.0
UNAVAILABLE = {"type": "websocket.close", "code": 4503, "reason": "auth_unavailable"}
OTHER_KEY = "another-key-that-is-long-enough-for-hs256-0123456789"


# Faulty steps.


class HangingStep:
    """An async resolver or revocation check that never returns; records its cancellation."""

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False

    async def __call__(self, *args: Any) -> Any:
        self.started = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class BlockingResolver:
    """A synchronous resolver stuck in its worker thread until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def __call__(self, claims: Any, scope: Any) -> Any:
        self.entered.set()
        try:
            self.release.wait(timeout=30)
        finally:
            self.returned.set()
        raise RuntimeError("released after the handshake was answered")


class SlowStep:
    """An async resolver or revocation check that takes ``seconds`` and then succeeds."""

    def __init__(self, seconds: float, result: Callable[..., Any]) -> None:
        self.seconds = seconds
        self.result = result

    async def __call__(self, *args: Any) -> Any:
        await asyncio.sleep(self.seconds)
        return await self.result(*args)


class HangOnFlag:
    """``token_user``, except that it hangs for tokens carrying a ``hang`` claim."""

    def __init__(self) -> None:
        self.hang = HangingStep()

    async def __call__(self, claims: Any, scope: Any) -> Any:
        if claims.get("hang"):
            return await self.hang(claims, scope)
        return await token_user(claims, scope)


def raising_async(error: Exception) -> Callable[..., Any]:
    async def resolver(claims: Any, scope: Any) -> Any:
        raise error

    return resolver


def raising_sync(error: Exception) -> Callable[..., Any]:
    def resolver(claims: Any, scope: Any) -> Any:
        raise error

    return resolver


class DatabaseOutage:
    """An execute wrapper that fails every query the way a dead database does for Django."""

    def __init__(self) -> None:
        self.queries = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.queries += 1
        raise OperationalError("unable to open database file")

    def install(self) -> None:
        connection.execute_wrappers.append(self)

    def remove(self) -> None:
        connection.execute_wrappers.remove(self)


@pytest.fixture
def database_down(
    suite_postgres: PostgresServer | None,
) -> Iterator[Callable[[], AbstractAsyncContextManager[None]]]:
    """A context manager under which the test database is down.

    On PostgreSQL (``CHANNELS_JWT_TEST_DATABASE=postgresql``) the session's server really
    stops, and starts again on the same port with the same data when the block ends: a
    lookup fails connecting. SQLite in memory has nothing to stop, so an execute wrapper
    fails every query instead, in the thread where channels runs them (Django's connections
    are per thread, and ``database_sync_to_async`` runs every call in one shared thread here:
    asgiref's thread-sensitive mode, with no sync code above us).
    """

    @asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        if suite_postgres is None:
            wrapper = DatabaseOutage()
            await database_sync_to_async(wrapper.install)()
            try:
                yield
            finally:
                await database_sync_to_async(wrapper.remove)()
            # The lookup ran into the outage, not around it.
            assert wrapper.queries > 0
            return
        await asyncio.to_thread(suite_postgres.stop)
        try:
            yield
        finally:
            await asyncio.to_thread(suite_postgres.start)
            # Connections from before the restart are dead: drop those of the threads that
            # outlive this test (channels' database thread closes its own after an error).
            await sync_to_async(connections.close_all)()

    yield outage
    if suite_postgres is not None:
        # And this thread's (the user fixtures used it; pytest-django flushes through it),
        # which only a sync fixture can close: the test itself runs on an event loop.
        connections.close_all()


# Helpers.


def faulty(inner: Any, **settings: Any) -> JWTAuthMiddleware:
    """The middleware with a short ``AUTH_TIMEOUT_SECONDS`` and ``settings``."""
    return JWTAuthMiddleware(inner, settings={"AUTH_TIMEOUT_SECONDS": AUTH_TIMEOUT, **settings})


def accepted_then(close: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "websocket.accept", "subprotocol": MARKER}, close]


def assert_clean_log(caplog: pytest.LogCaptureFixture, secret: str) -> None:
    """No record carries ``secret`` (the token); channels_jwt's records carry no traceback.

    (Django 5 itself logs a receiver's exception with its traceback, on ``django.dispatch``.)
    """
    assert secret not in caplog.text
    assert all(record.exc_info is None for record in channels_jwt_records(caplog))


@pytest.fixture
def blocking_resolver() -> Iterator[BlockingResolver]:
    """A blocking resolver, always released at the end so no worker thread outlives the test."""
    resolver = BlockingResolver()
    yield resolver
    resolver.release.set()
    # Later tests share channels' database thread: hand it back before they start.
    assert resolver.returned.wait(timeout=STEP_TIMEOUT) or not resolver.entered.is_set()


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """``caplog`` receiving everything from INFO up."""
    caplog.set_level(logging.INFO)
    return caplog


# A lookup that hangs.


HANGING_STEPS = [
    pytest.param("USER_RESOLVER", {}, id="user-resolver"),
    pytest.param("REVOCATION_CHECK", {"USER_RESOLVER": token_user}, id="revocation-check"),
]


@pytest.mark.parametrize(("setting", "others"), HANGING_STEPS)
async def test_hanging_step_closes_4503_once_the_timeout_passes(
    setting: str, others: dict[str, Any], inner: RecordingApp
) -> None:
    step = HangingStep()
    app = faulty(inner, **{setting: step, **others})

    messages, elapsed = await timed_handshake(
        app, websocket_scope(PATH, subprotocols=[MARKER, token_for()]), timeout=STEP_TIMEOUT
    )

    assert messages == accepted_then(UNAVAILABLE)
    # Not before the timeout (the step really hung), and not much after it.
    assert AUTH_TIMEOUT <= elapsed < AUTH_TIMEOUT + MARGIN
    assert (step.started, step.cancelled) == (True, True)
    assert not inner.called


@pytest.mark.parametrize(("setting", "others"), HANGING_STEPS)
async def test_hanging_step_logs_one_warning_without_the_token(
    setting: str, others: dict[str, Any], inner: RecordingApp, log: pytest.LogCaptureFixture
) -> None:
    offered = token_for()
    await timed_handshake(
        faulty(inner, **{setting: HangingStep(), **others}),
        websocket_scope(PATH, subprotocols=[MARKER, offered]),
        timeout=STEP_TIMEOUT,
    )

    assert warnings_of(log) == [
        f"WebSocket authentication unavailable: authentication took over {AUTH_TIMEOUT:g} s"
    ]
    assert_clean_log(log, offered)


async def test_hanging_lookup_still_closes_4503_when_anonymous_is_allowed(
    inner: RecordingApp,
) -> None:
    app = faulty(inner, USER_RESOLVER=HangingStep(), ALLOW_ANONYMOUS=True)

    messages, _ = await timed_handshake(
        app, websocket_scope(PATH, subprotocols=[MARKER, token_for()]), timeout=STEP_TIMEOUT
    )

    assert messages == accepted_then(UNAVAILABLE)
    assert not inner.called


async def test_blocking_sync_resolver_closes_4503_while_its_thread_is_still_stuck(
    blocking_resolver: BlockingResolver, inner: RecordingApp
) -> None:
    app = faulty(inner, USER_RESOLVER=blocking_resolver)

    messages, elapsed = await timed_handshake(
        app, websocket_scope(PATH, subprotocols=[MARKER, token_for()]), timeout=STEP_TIMEOUT
    )

    assert messages == accepted_then(UNAVAILABLE)
    assert AUTH_TIMEOUT <= elapsed < AUTH_TIMEOUT + MARGIN
    # The thread cannot be interrupted: it is still inside the resolver when the client is told.
    assert blocking_resolver.entered.is_set()
    assert not blocking_resolver.returned.is_set()
    assert not inner.called


async def test_timeout_bounds_revocation_check_and_lookup_together(inner: RecordingApp) -> None:
    # Each step alone fits in the timeout; the two together do not.
    step = AUTH_TIMEOUT * 2 / 3
    app = faulty(
        inner,
        REVOCATION_CHECK=SlowStep(step, never_revoked),
        USER_RESOLVER=SlowStep(step, token_user),
    )

    messages, elapsed = await timed_handshake(
        app, websocket_scope(PATH, subprotocols=[MARKER, token_for()]), timeout=STEP_TIMEOUT
    )

    assert messages == accepted_then(UNAVAILABLE)
    assert AUTH_TIMEOUT <= elapsed < AUTH_TIMEOUT + MARGIN


async def test_slow_steps_within_the_timeout_are_accepted(inner: RecordingApp) -> None:
    # The counterpart of the test above: the same slow steps with room to finish.
    step = AUTH_TIMEOUT * 2 / 3
    app = JWTAuthMiddleware(
        inner,
        settings={
            "AUTH_TIMEOUT_SECONDS": AUTH_TIMEOUT * 4,
            "REVOCATION_CHECK": SlowStep(step, never_revoked),
            "USER_RESOLVER": SlowStep(step, token_user),
        },
    )
    communicator = WebsocketCommunicator(app, PATH, subprotocols=[MARKER, token_for(7)])

    assert await communicator.connect(STEP_TIMEOUT) == (True, MARKER)
    assert inner.scopes[0]["user"].pk == 7
    await communicator.disconnect()


# A refresh whose lookup hangs.


class RefreshingApp:
    """Accepts; every text frame is a token to refresh with; answers with the outcome as JSON."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            started = time.monotonic()
            try:
                await scope["jwt"].refresh(message["text"])
            except ChannelsJWTError as exc:
                outcome: dict[str, Any] = {"error": type(exc).__name__, "code": exc.close_code}
            else:
                outcome = {"jti": scope["jwt"].claims["jti"]}
            outcome["seconds"] = time.monotonic() - started
            await send({"type": "websocket.send", "text": json.dumps(outcome)})


async def refreshed(communicator: WebsocketCommunicator, new_token: str) -> dict[str, Any]:
    await communicator.send_to(text_data=new_token)
    reply: dict[str, Any] = json.loads(await communicator.receive_from(STEP_TIMEOUT))
    return reply


@pytest.fixture
async def refreshing() -> AsyncIterator[tuple[RefreshingApp, HangOnFlag, WebsocketCommunicator]]:
    """An open connection whose consumer refreshes on request; its resolver hangs on a flag."""
    app, resolver = RefreshingApp(), HangOnFlag()
    communicator = WebsocketCommunicator(
        faulty(app, USER_RESOLVER=resolver), PATH, subprotocols=[MARKER, token_for()]
    )
    assert await communicator.connect(STEP_TIMEOUT) == (True, MARKER)
    yield app, resolver, communicator
    await communicator.disconnect()


async def test_hanging_lookup_during_refresh_raises_resolver_error_in_bounded_time(
    refreshing: tuple[RefreshingApp, HangOnFlag, WebsocketCommunicator],
) -> None:
    _, resolver, communicator = refreshing

    reply = await refreshed(communicator, token_for(hang=True))

    assert (reply["error"], reply["code"]) == ("ResolverError", 4503)
    assert AUTH_TIMEOUT <= reply["seconds"] < AUTH_TIMEOUT + MARGIN
    assert (resolver.hang.started, resolver.hang.cancelled) == (True, True)


async def test_connection_keeps_its_token_and_can_refresh_after_a_hung_refresh(
    refreshing: tuple[RefreshingApp, HangOnFlag, WebsocketCommunicator],
) -> None:
    app, _, communicator = refreshing
    first_jti = app.scope["jwt"].claims["jti"]
    await refreshed(communicator, token_for(hang=True))
    assert app.scope["jwt"].claims["jti"] == first_jti

    good = claims_for(1)
    reply = await refreshed(communicator, hs_token(good))

    assert reply["jti"] == good["jti"]


# A lookup that raises.


RAISED = [
    pytest.param(raising_async(RuntimeError("resolver bug")), "RuntimeError", id="async-runtime"),
    pytest.param(
        raising_async(OperationalError("server closed the connection")),
        "OperationalError",
        id="async-operational",
    ),
    pytest.param(
        raising_sync(OperationalError("database is locked")),
        "OperationalError",
        id="sync-operational",
    ),
    pytest.param(raising_async(ConnectionError("reset")), "ConnectionError", id="async-connection"),
]
ANONYMOUS = [
    pytest.param(False, id="anonymous-off"),
    pytest.param(True, id="anonymous-on"),
]


@pytest.mark.parametrize("allow_anonymous", ANONYMOUS)
@pytest.mark.parametrize(("resolver", "error"), RAISED)
async def test_raising_resolver_closes_4503_without_letting_anyone_in(
    resolver: Callable[..., Any], error: str, allow_anonymous: bool, inner: RecordingApp
) -> None:
    app = faulty(inner, USER_RESOLVER=resolver, ALLOW_ANONYMOUS=allow_anonymous)

    messages, elapsed = await timed_handshake(
        app, websocket_scope(PATH, subprotocols=[MARKER, token_for()]), timeout=STEP_TIMEOUT
    )

    assert messages == accepted_then(UNAVAILABLE)
    assert elapsed < MARGIN  # a crash is answered at once, not after the timeout
    assert not inner.called


@pytest.mark.parametrize(("resolver", "error"), RAISED)
async def test_raising_resolver_logs_a_warning_naming_the_error_not_its_text(
    resolver: Callable[..., Any],
    error: str,
    inner: RecordingApp,
    log: pytest.LogCaptureFixture,
) -> None:
    offered = token_for()
    await timed_handshake(
        faulty(inner, USER_RESOLVER=resolver),
        websocket_scope(PATH, subprotocols=[MARKER, offered]),
        timeout=STEP_TIMEOUT,
    )

    expected = f"WebSocket authentication unavailable: user lookup failed ({error})"
    assert warnings_of(log) == [expected]
    assert_clean_log(log, offered)


# A database that is down during the lookup (the real ``database_user``).


@pytest.mark.parametrize("allow_anonymous", ANONYMOUS)
async def test_database_outage_during_lookup_closes_4503(
    allow_anonymous: bool,
    user: Any,
    inner: RecordingApp,
    database_down: Callable[[], AbstractAsyncContextManager[None]],
) -> None:
    app = faulty(inner, ALLOW_ANONYMOUS=allow_anonymous)

    async with database_down():
        messages, elapsed = await timed_handshake(
            app,
            websocket_scope(PATH, subprotocols=[MARKER, token_for(user.pk)]),
            timeout=STEP_TIMEOUT,
        )

    assert messages == accepted_then(UNAVAILABLE)
    assert elapsed < MARGIN  # a refused connection is answered at once, not at the timeout
    assert not inner.called


async def test_database_outage_is_logged_as_a_warning_without_the_token(
    user: Any,
    inner: RecordingApp,
    log: pytest.LogCaptureFixture,
    database_down: Callable[[], AbstractAsyncContextManager[None]],
) -> None:
    offered = token_for(user.pk)
    async with database_down():
        await timed_handshake(
            faulty(inner),
            websocket_scope(PATH, subprotocols=[MARKER, offered]),
            timeout=STEP_TIMEOUT,
        )

    assert warnings_of(log) == [
        "WebSocket authentication unavailable: user lookup failed (OperationalError)"
    ]
    assert_clean_log(log, offered)


async def test_connections_succeed_again_once_the_database_is_back(
    user: Any, inner: RecordingApp, database_down: Callable[[], AbstractAsyncContextManager[None]]
) -> None:
    app = faulty(inner)
    async with database_down():
        refused, _ = await timed_handshake(
            app,
            websocket_scope(PATH, subprotocols=[MARKER, token_for(user.pk)]),
            timeout=STEP_TIMEOUT,
        )
    assert refused == accepted_then(UNAVAILABLE)

    communicator = WebsocketCommunicator(app, PATH, subprotocols=[MARKER, token_for(user.pk)])
    assert await communicator.connect(STEP_TIMEOUT) == (True, MARKER)
    assert [scope["user"] for scope in inner.scopes] == [user]
    await communicator.disconnect()


# Signal receivers that raise.


def receiver_that_raises(**kwargs: Any) -> None:
    """A broken project receiver; its message quotes everything it was given."""
    raise RuntimeError(f"receiver bug with {kwargs!r}")


#: A handshake the ``authentication_failed`` receiver sees: what is offered, the settings,
#: and the close the client must get whether or not a receiver raises.
FAILED_HANDSHAKES = [
    pytest.param(lambda: ["not-a-jwt"], {}, 4400, "token_malformed", id="4400"),
    pytest.param(list, {}, 4401, "token_missing", id="4401-missing"),
    pytest.param(
        lambda: [hs_token(claims_for(1), key=OTHER_KEY)], {}, 4401, "token_invalid", id="4401"
    ),
    pytest.param(
        lambda: [token_for()], {"USER_RESOLVER": finding_nobody}, 4403, "user_rejected", id="4403"
    ),
    pytest.param(lambda: [expired_token_for()], {}, 4440, "token_expired", id="4440"),
    pytest.param(
        lambda: [token_for()],
        {"USER_RESOLVER": raising_async(RuntimeError("down"))},
        4503,
        "auth_unavailable",
        id="4503",
    ),
]


@pytest.mark.parametrize(("offered", "settings", "code", "reason"), FAILED_HANDSHAKES)
async def test_raising_failure_receiver_leaves_the_close_code_as_it_was(
    offered: Callable[[], list[str]],
    settings: dict[str, Any],
    code: int,
    reason: str,
    inner: RecordingApp,
) -> None:
    credentials = offered()
    app = faulty(inner, **{"USER_RESOLVER": token_user, **settings})
    without, _ = await timed_handshake(
        app,
        websocket_scope(PATH, subprotocols=[MARKER, *credentials] if credentials else []),
        timeout=STEP_TIMEOUT,
    )
    with connected(authentication_failed, receiver_that_raises, "tests.faults.raising"):
        with_receiver, _ = await timed_handshake(
            app,
            websocket_scope(PATH, subprotocols=[MARKER, *credentials] if credentials else []),
            timeout=STEP_TIMEOUT,
        )

    close = {"type": "websocket.close", "code": code, "reason": reason}
    assert without[-1] == with_receiver[-1] == close
    assert not inner.called


@pytest.mark.parametrize(("offered", "settings", "code", "reason"), FAILED_HANDSHAKES)
async def test_raising_failure_receiver_is_named_in_an_error_without_the_token(
    offered: Callable[[], list[str]],
    settings: dict[str, Any],
    code: int,
    reason: str,
    inner: RecordingApp,
    log: pytest.LogCaptureFixture,
) -> None:
    credentials = offered()
    app = faulty(inner, **{"USER_RESOLVER": token_user, **settings})
    with connected(authentication_failed, receiver_that_raises, "tests.faults.raising"):
        await timed_handshake(
            app,
            websocket_scope(PATH, subprotocols=[MARKER, *credentials] if credentials else []),
            timeout=STEP_TIMEOUT,
        )

    errors = [r.getMessage() for r in channels_jwt_records(log) if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "receiver_that_raises" in errors[0]
    assert errors[0].endswith("of a channels_jwt signal raised RuntimeError")
    for credential in credentials:
        assert_clean_log(log, credential)


async def test_raising_authenticated_receiver_leaves_the_connection_accepted(
    inner: RecordingApp, log: pytest.LogCaptureFixture
) -> None:
    offered = token_for(42)
    app = faulty(inner, USER_RESOLVER=token_user)
    communicator = WebsocketCommunicator(app, PATH, subprotocols=[MARKER, offered])
    with connected(authenticated, receiver_that_raises, "tests.faults.raising"):
        outcome = await communicator.connect(STEP_TIMEOUT)

    assert outcome == (True, MARKER)
    assert inner.scopes[0]["user"].pk == 42
    await communicator.send_to(text_data="still here")
    assert await communicator.receive_from(STEP_TIMEOUT) == "still here"
    await communicator.disconnect()
    (error,) = [r.getMessage() for r in channels_jwt_records(log) if r.levelno >= logging.ERROR]
    assert "receiver_that_raises" in error
    assert_clean_log(log, offered)


@pytest.mark.parametrize(
    ("signal", "offered"),
    [
        pytest.param(authenticated, lambda: [MARKER, token_for()], id="authenticated"),
        pytest.param(authentication_failed, lambda: [MARKER, "not-a-jwt"], id="failed"),
    ],
)
async def test_receivers_after_a_raising_one_still_run(
    signal: Signal, offered: Callable[[], list[str]], inner: RecordingApp
) -> None:
    app = faulty(inner, USER_RESOLVER=token_user)
    communicator = WebsocketCommunicator(app, PATH, subprotocols=offered())
    with (
        connected(signal, receiver_that_raises, "tests.faults.raising"),
        receiving(signal) as calls,
    ):
        # Close mode accepts a rejected connection too, before closing it.
        assert await communicator.connect(STEP_TIMEOUT) == (True, MARKER)
        await communicator.disconnect()

    assert len(calls) == 1
