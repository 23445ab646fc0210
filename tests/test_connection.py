"""Open connections in-process: expiry, in-band refresh, revocation (denylist and live), leaks.

Everything runs through ``JWTAuthMiddleware`` and asgiref's ``ApplicationCommunicator`` (or
channels' ``WebsocketCommunicator`` for consumers). Tokens are real HS256 tokens whose ``exp``
is set a second or so ahead, so the tests that wait for an expiry wait for real, bounded by
:data:`TIMEOUT`. Failing channel layers are small ``InMemoryChannelLayer`` subclasses named in
``CHANNEL_LAYERS``, the way a project names its own backend; the unreachable cache is Django's
Redis cache pointed at a closed loopback port.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.layers import get_channel_layer

from channels_jwt import (
    ChannelsJWTError,
    JWTAuthMiddleware,
    ResolverError,
    TokenExpired,
    TokenInvalid,
    TokenMalformed,
    TokenRevoked,
    UserRejected,
    adisconnect_user,
)
from channels_jwt.connection import ConnectionGuard, JWTConnection
from channels_jwt.expiry import expiry_clock
from channels_jwt.live import LiveSubscription
from channels_jwt.users import token_user
from tests.harness import (
    CLOSE_REVOKED,
    LOGGER,
    MARKER,
    OTHER_KEY,
    PATH,
    TIMEOUT,
    Configure,
    RecordingApp,
    RefreshingApp,
    Sockets,
    claims_for,
    expired_token_for,
    hang_up,
    hs_token,
    picky_revocation_check,
    send_text,
    soon,
    token_for,
    websocket_scope,
)

#: How late after its deadline an in-process expiry close may arrive.
LATENESS = 0.5
#: How early it may arrive (the loop clock and the wall clock are read separately).
EARLINESS = 0.05
CLOSE_EXPIRED = {"type": "websocket.close", "code": 4440, "reason": "token_expired"}


# Project hooks named in settings by the tests below.


async def picky_resolver(claims: Mapping[str, Any], scope: Any) -> Any:
    """``token_user``, except for the usernames that act out the resolver's other outcomes."""
    name = claims.get("username")
    if name == "ghost":
        return None
    if name == "crash":
        raise RuntimeError("database is down")
    if name == "banned":
        raise UserRejected("banned by the project")
    return await token_user(claims, scope)


# Inner applications.


@dataclass
class LateSenderApp:
    """Accepts; once ``go`` is set it sends a frame and a close, as a consumer reacting to a
    group message would, whether or not the socket is still open."""

    go: asyncio.Event

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await self.go.wait()
        await send({"type": "websocket.send", "text": "late"})
        await send({"type": "websocket.close", "code": 1000})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@dataclass
class ClosingApp:
    """Accepts; closes with 1000 on the first frame, then waits for the disconnect."""

    scopes: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        await send({"type": "websocket.close", "code": 1000})
        while (await receive())["type"] != "websocket.disconnect":
            pass


async def minimal_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, then wait for the disconnect (the leak test's inner app)."""
    await receive()
    await send({"type": "websocket.accept"})
    await receive()


# Helpers.


def pending_expiry_timers() -> int:
    """Connections waiting on the running loop's expiry clock."""
    return len(expiry_clock())


def live_objects(kind: type) -> int:
    """How many instances of ``kind`` are still alive, after a full collection."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


async def output_by(communicator: ApplicationCommunicator, deadline: float) -> dict[str, Any]:
    """The next message the app sends, waiting until ``deadline`` (wall clock) + TIMEOUT."""
    message: dict[str, Any] = await communicator.receive_output(
        max(0.0, deadline - time.time()) + TIMEOUT
    )
    return message


async def quiet_until(communicator: ApplicationCommunicator, instant: float) -> bool:
    """Whether the app sends nothing until ``instant`` (wall clock)."""
    quiet: bool = await communicator.receive_nothing(max(0.0, instant - time.time()))
    return quiet


# Expiry: the timer.


async def test_timer_closes_with_4440_at_exp(configure: Configure, sockets: Sockets) -> None:
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=exp))

    close = await output_by(communicator, exp)
    closed_at = time.time()

    assert close == CLOSE_EXPIRED
    assert exp - EARLINESS <= closed_at <= exp + LATENESS


async def test_timer_of_a_fractional_exp_fires_at_its_whole_second(
    configure: Configure, sockets: Sockets
) -> None:
    # The handshake judges exp in whole seconds (jwt.decode's rule): X.9 is expired from X.0.
    # An open socket must not outlive what a new handshake would refuse.
    whole = soon()
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=whole + 0.9))

    close = await output_by(communicator, whole + 0.9)
    closed_at = time.time()

    assert close == CLOSE_EXPIRED
    assert whole - EARLINESS <= closed_at <= whole + LATENESS


async def test_expiry_close_is_recorded_on_scope_jwt(
    configure: Configure, sockets: Sockets
) -> None:
    inner = RecordingApp()
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(exp=exp))
    connection = inner.scopes[0]["jwt"]
    before = (connection.close_code, connection.close_reason)

    await output_by(communicator, exp)

    assert before == (None, None)
    assert (connection.close_code, connection.close_reason) == (4440, "token_expired")


async def test_expiry_close_code_is_a_plain_int(configure: Configure, sockets: Sockets) -> None:
    # ASGI servers may check the type exactly: daphne (autobahn) refuses an IntEnum member.
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=exp))

    close = await output_by(communicator, exp)

    assert type(close["code"]) is int


async def test_frame_after_the_deadline_is_not_passed_on_but_closes(
    configure: Configure, sockets: Sockets
) -> None:
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=exp))

    # Hold the event loop past the deadline, as a busy server does, so the frame is already
    # waiting when the loop next runs: the receive-side check must catch it.
    time.sleep(max(0.0, exp - time.time()) + 0.05)  # noqa: ASYNC251
    await send_text(communicator, "after the deadline")

    assert await communicator.receive_output(TIMEOUT) == CLOSE_EXPIRED
    assert await communicator.receive_nothing(0.1)


async def test_frames_after_the_middlewares_close_are_swallowed(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)  # a revocation closes at once; an expiry would too
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))
    await adisconnect_user(1)
    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED

    await send_text(communicator, "too late")

    assert await communicator.receive_nothing(0.1)


async def test_frames_before_the_deadline_pass(configure: Configure, sockets: Sockets) -> None:
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=soon(5)))

    await send_text(communicator, "hello")

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.send", "text": "hello"}


async def test_close_on_expiry_off_keeps_the_socket_open(
    configure: Configure, sockets: Sockets
) -> None:
    configure(CLOSE_ON_EXPIRY=False)
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=exp))

    quiet = await quiet_until(communicator, exp + 0.3)
    await send_text(communicator, "still here")

    assert quiet
    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.send",
        "text": "still here",
    }


async def test_leeway_moves_the_close_to_exp_plus_leeway(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LEEWAY=1)
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=exp))

    close = await output_by(communicator, exp + 1)
    closed_at = time.time()

    assert close == CLOSE_EXPIRED
    assert exp + 1 - EARLINESS <= closed_at <= exp + 1 + LATENESS


async def test_close_codes_override_applies_to_the_expiry_close(
    configure: Configure, sockets: Sockets
) -> None:
    configure(CLOSE_CODES={"token_expired": 4001})
    inner = RecordingApp()
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(exp=exp))

    close = await output_by(communicator, exp)

    assert close == {"type": "websocket.close", "code": 4001, "reason": "token_expired"}
    assert inner.scopes[0]["jwt"].close_code == 4001


async def test_app_sends_after_the_middleware_closed_are_dropped(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)  # a revocation closes at once; an expiry would too
    go = asyncio.Event()
    communicator = await sockets.open(JWTAuthMiddleware(LateSenderApp(go)), token_for(1))
    await adisconnect_user(1)
    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED

    go.set()

    assert await communicator.receive_nothing(0.1)


async def test_apps_own_close_cancels_the_timer(configure: Configure, sockets: Sockets) -> None:
    inner = ClosingApp()
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(exp=exp))
    await send_text(communicator, "bye")
    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 1000}

    timers = pending_expiry_timers()
    quiet = await quiet_until(communicator, exp + 0.3)

    assert (timers, quiet) == (0, True)
    assert inner.scopes[0]["jwt"].close_code is None


async def test_disconnect_cancels_the_timer(configure: Configure, sockets: Sockets) -> None:
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(exp=soon(60)))
    armed = pending_expiry_timers()

    await hang_up(communicator)

    assert (armed, pending_expiry_timers()) == (1, 0)


async def test_no_timer_without_exp(configure: Configure, sockets: Sockets) -> None:
    configure(REQUIRED_CLAIMS=["iat"])
    inner = RecordingApp()
    await sockets.open(JWTAuthMiddleware(inner), token_for(exp=...))

    assert (pending_expiry_timers(), inner.scopes[0]["jwt"].expires_at) == (0, None)


async def test_revocation_after_the_expiry_close_sends_nothing_more(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    inner = RecordingApp()
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1, exp=exp))
    assert await output_by(communicator, exp) == CLOSE_EXPIRED

    await adisconnect_user(1)

    assert await communicator.receive_nothing(0.1)
    assert inner.scopes[0]["jwt"].close_code == 4440


def failing_close(app: Any) -> Any:
    """``app`` behind a server whose close raises ``OSError``, as ASGI servers do for any
    ``send`` once the client has gone."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_or_fail(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.close":
                raise OSError("the client has gone")
            await send(message)

        await app(scope, receive, send_or_fail)

    return wrapped


async def test_failure_to_send_the_close_is_logged_and_the_cause_kept(
    configure: Configure, sockets: Sockets, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    configure(LIVE_REVOCATION=True)
    inner = RecordingApp()
    communicator = await sockets.open(failing_close(JWTAuthMiddleware(inner)), token_for(1))

    await adisconnect_user(1)
    nothing_sent = await communicator.receive_nothing(0.1)

    assert nothing_sent
    assert "Closing the socket failed: OSError" in caplog.messages
    assert inner.scopes[0]["jwt"].close_code == 4441


# The accept, and the connection object.


async def test_accept_names_no_subprotocol_for_a_query_token(
    configure: Configure, sockets: Sockets
) -> None:
    scope = websocket_scope(PATH, query_string=f"token={token_for(1)}".encode())
    communicator = ApplicationCommunicator(JWTAuthMiddleware(RecordingApp()), scope)
    sockets.opened.append(communicator)

    await communicator.send_input({"type": "websocket.connect"})

    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.accept",
        "subprotocol": None,
    }


async def test_apps_own_subprotocol_choice_is_kept(configure: Configure, sockets: Sockets) -> None:
    app = JWTAuthMiddleware(RecordingApp(subprotocol="chat.v1"))
    communicator = sockets.communicator(app, token_for(1))

    await communicator.send_input({"type": "websocket.connect"})

    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.accept",
        "subprotocol": "chat.v1",
    }


def test_connection_repr_shows_source_and_expiry_only() -> None:
    claims = claims_for(1, exp=2_000_000_000, username="carol")

    text = repr(JWTConnection(claims, "subprotocol"))

    assert text == "<JWTConnection source='subprotocol' expires_at=2033-05-18 03:33:20+00:00>"


# Refresh: scope["jwt"].refresh().


async def test_refresh_swaps_the_claims(configure: Configure, sockets: Sockets) -> None:
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(exp=soon(60)))
    new_claims = claims_for(1, exp=soon(120), jti="the-new-one")

    await send_text(communicator, hs_token(new_claims))

    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.send",
        "text": "refreshed",
    }
    assert dict(inner.connection.claims) == new_claims
    assert inner.connection.expires_at == datetime.fromtimestamp(new_claims["exp"], tz=timezone.utc)


async def test_refresh_rearms_the_timer_for_the_new_exp(
    configure: Configure, sockets: Sockets
) -> None:
    old_exp = soon()
    new_exp = old_exp + 1
    communicator = await sockets.open(JWTAuthMiddleware(RefreshingApp()), token_for(exp=old_exp))
    await send_text(communicator, token_for(exp=new_exp))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refreshed"

    open_after_old_exp = await quiet_until(communicator, old_exp + 0.3)
    close = await output_by(communicator, new_exp)
    closed_at = time.time()

    assert open_after_old_exp
    assert close == CLOSE_EXPIRED
    assert new_exp - EARLINESS <= closed_at <= new_exp + LATENESS


async def test_refresh_arms_a_timer_when_the_old_token_had_no_exp(
    configure: Configure, sockets: Sockets
) -> None:
    configure(REQUIRED_CLAIMS=["iat"])
    communicator = await sockets.open(JWTAuthMiddleware(RefreshingApp()), token_for(exp=...))
    new_exp = soon()
    await send_text(communicator, token_for(exp=new_exp))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refreshed"

    assert await output_by(communicator, new_exp) == CLOSE_EXPIRED


async def test_refresh_before_accept_arms_the_timer_only_at_accept(
    configure: Configure, sockets: Sockets
) -> None:
    new_exp = soon()

    async def refresh_then_accept(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await scope["jwt"].refresh(token_for(exp=new_exp))
        assert scope["jwt"].claims["exp"] == new_exp
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    communicator = await sockets.open(JWTAuthMiddleware(refresh_then_accept), token_for())

    assert await output_by(communicator, new_exp) == CLOSE_EXPIRED


async def test_refresh_with_another_users_token_is_refused(
    configure: Configure, sockets: Sockets
) -> None:
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1, exp=soon(60)))
    claims_before = dict(inner.connection.claims)

    await send_text(communicator, token_for(2, exp=soon(120)))

    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused token_invalid"
    assert [type(exc) for exc in inner.refusals] == [TokenInvalid]
    assert dict(inner.connection.claims) == claims_before


async def test_refused_refresh_keeps_the_old_deadline(
    configure: Configure, sockets: Sockets
) -> None:
    exp = soon()
    communicator = await sockets.open(JWTAuthMiddleware(RefreshingApp()), token_for(1, exp=exp))
    await send_text(communicator, token_for(2, exp=exp + 60))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused token_invalid"

    assert await output_by(communicator, exp) == CLOSE_EXPIRED


REFUSED_REFRESHES = [
    pytest.param(expired_token_for, TokenExpired, 4440, id="expired"),
    pytest.param(lambda: "not-a-jwt", TokenMalformed, 4400, id="garbage"),
    pytest.param(lambda: hs_token(claims_for(1), key=OTHER_KEY), TokenInvalid, 4401, id="bad-key"),
    pytest.param(lambda: token_for(1, token_type="refresh"), TokenInvalid, 4401, id="refresh-type"),
    pytest.param(lambda: token_for(2), TokenInvalid, 4401, id="other-user"),
    pytest.param(lambda: token_for(1, jti="revoked-1"), TokenRevoked, 4441, id="revoked"),
    pytest.param(lambda: token_for(1, username="ghost"), UserRejected, 4403, id="no-user"),
    pytest.param(lambda: token_for(1, username="banned"), UserRejected, 4403, id="user-rejected"),
    pytest.param(lambda: token_for(1, jti="crash-1"), ResolverError, 4503, id="check-crashes"),
    pytest.param(lambda: token_for(1, username="crash"), ResolverError, 4503, id="lookup-crashes"),
]


@pytest.mark.parametrize(("make_token", "error", "code"), REFUSED_REFRESHES)
async def test_refused_refresh_raises_the_pipelines_error(
    make_token: Callable[[], str],
    error: type[ChannelsJWTError],
    code: int,
    configure: Configure,
    sockets: Sockets,
) -> None:
    configure(USER_RESOLVER=picky_resolver, REVOCATION_CHECK=picky_revocation_check)
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1))
    claims_before = dict(inner.connection.claims)

    await send_text(communicator, make_token())

    assert (await communicator.receive_output(TIMEOUT))["text"] == f"refused {error.reason}"
    assert [(type(exc), exc.close_code) for exc in inner.refusals] == [(error, code)]
    assert dict(inner.connection.claims) == claims_before


def sync_revocation_check(claims: Mapping[str, Any]) -> bool:
    """A synchronous ``REVOCATION_CHECK`` (run in channels' database thread)."""
    return str(claims["jti"]).startswith("revoked-")


async def test_refresh_runs_a_synchronous_revocation_check(
    transactional_db: None, configure: Configure, sockets: Sockets
) -> None:
    configure(REVOCATION_CHECK=sync_revocation_check)
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1))

    await send_text(communicator, token_for(1, jti="revoked-3"))

    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused token_revoked"


async def test_refresh_checks_the_user_in_the_database(
    user: Any, inactive_user: Any, configure: Configure, sockets: Sockets
) -> None:
    configure(USER_RESOLVER="channels_jwt.users.database_user")
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(user.pk))

    await send_text(communicator, token_for(inactive_user.pk))

    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused user_rejected"
    assert inner.scopes[0]["user"] == user


async def test_refresh_without_the_middleware_raises_runtime_error() -> None:
    connection = JWTConnection(claims_for(1), "query")

    with pytest.raises(RuntimeError, match="not guarded by JWTAuthMiddleware"):
        await connection.refresh(token_for(1))


# Leaks.

LEAK_CYCLES = 10_000


async def test_ten_thousand_connections_leave_nothing_behind(configure: Configure) -> None:
    configure(LIVE_REVOCATION=True)
    app = JWTAuthMiddleware(minimal_app)
    layer = get_channel_layer()
    exp = soon(600)
    tokens = [token_for(cycle % 100 + 1, exp=exp) for cycle in range(LEAK_CYCLES)]
    tasks_before = asyncio.all_tasks()
    accepted = 0
    while_open: tuple[int, int, int] | None = None

    started = time.perf_counter()
    for token in tokens:
        scope = websocket_scope(PATH, subprotocols=[MARKER, token])
        communicator = ApplicationCommunicator(app, scope)
        await communicator.send_input({"type": "websocket.connect"})
        accepted += (await communicator.receive_output(TIMEOUT))["type"] == "websocket.accept"
        if while_open is None:  # what the counts below see while a connection is open
            extra_tasks = len(asyncio.all_tasks() - tasks_before)
            while_open = (extra_tasks, pending_expiry_timers(), len(layer.groups))
        await hang_up(communicator)
    elapsed = time.perf_counter() - started
    del communicator
    print(f"\n{LEAK_CYCLES} connect/disconnect cycles in {elapsed:.2f}s")

    assert accepted == LEAK_CYCLES
    # The application's task and the listener; the expiry timer; the user and token groups.
    assert while_open == (2, 1, 2)
    assert asyncio.all_tasks() - tasks_before == set()
    assert pending_expiry_timers() == 0
    assert (layer.groups, layer.channels) == ({}, {})
    assert [live_objects(kind) for kind in (ConnectionGuard, JWTConnection, LiveSubscription)] == [
        0,
        0,
        0,
    ]


async def test_the_close_line_escapes_a_forged_path(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    exp = soon()
    scope = websocket_scope("/ws/\r\nforged\x1b[31m", subprotocols=[MARKER, token_for(exp=exp)])
    communicator = ApplicationCommunicator(JWTAuthMiddleware(RecordingApp()), scope)
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output(TIMEOUT))["type"] == "websocket.accept"

    assert await output_by(communicator, exp) == CLOSE_EXPIRED
    await communicator.wait(TIMEOUT)

    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert lines == [
        "WebSocket closed by channels_jwt: token_expired code=4440 path=/ws/\\r\\nforged\\x1b[31m"
    ]


async def pk_less_user(claims: Any, scope: Any) -> Any:
    """A resolver whose users have no ``pk`` (a user object of an external directory)."""
    return SimpleNamespace(username=f"user{claims['user_id']}", is_authenticated=True)


async def test_refresh_with_another_users_token_is_refused_when_users_have_no_pk(
    configure: Configure, sockets: Sockets
) -> None:
    # Comparing pk alone, None == None let user 2's token into user 1's socket.
    configure(USER_RESOLVER=pk_less_user)
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1, exp=soon(60)))
    claims_before = dict(inner.connection.claims)

    await send_text(communicator, token_for(2, exp=soon(120)))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused token_invalid"
    assert dict(inner.connection.claims) == claims_before

    await send_text(communicator, token_for(1, exp=soon(120)))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refreshed"


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(SimpleNamespace(pk=7), id="another-pk"),
        pytest.param(SimpleNamespace(username="no pk"), id="pk-lost"),
    ],
)
async def test_refresh_with_the_same_id_claim_but_another_user_object_is_refused(
    second: Any, configure: Configure, sockets: Sockets
) -> None:
    served = iter([SimpleNamespace(pk=1), second])

    async def shifting_user(claims: Any, scope: Any) -> Any:
        return next(served)

    configure(USER_RESOLVER=shifting_user)
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1, exp=soon(60)))

    await send_text(communicator, token_for(1, exp=soon(120)))

    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused token_invalid"


async def test_refresh_of_a_token_without_a_canonical_user_id_is_refused(
    configure: Configure, sockets: Sockets
) -> None:
    # The resolver let " 1" in; refresh judges the id claim itself, and it names nobody.
    configure(USER_RESOLVER=pk_less_user)
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(" 1", exp=soon(60)))

    await send_text(communicator, token_for(" 1", exp=soon(120)))

    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused token_invalid"
