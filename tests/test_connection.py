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
import importlib
import json
import logging
import math
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

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
    arevoke_token,
    disconnect_user,
    revoke_token,
)
from channels_jwt.connection import ConnectionGuard, JWTConnection
from channels_jwt.consumers import TokenRefreshMixin
from channels_jwt.live import LiveSubscription, user_group
from channels_jwt.revocation import denylist_key
from channels_jwt.users import token_user
from tests.conftest import RecordingApp, claims_for, hs_token, websocket_scope

PATH = "/ws/chat/"
MARKER = "access_token"
#: Seconds any single step (a handshake, a frame, a close) may take beyond its due time.
TIMEOUT = 3.0
#: How late after its deadline an in-process expiry close may arrive.
LATENESS = 0.5
#: How early it may arrive (the loop clock and the wall clock are read separately).
EARLINESS = 0.05
OTHER_KEY = "another-key-that-is-long-enough-for-hs256-0123456789"
CACHE_DENYLIST = "channels_jwt.revocation.cache_denylist"
LOGGER = "channels_jwt"
CLOSE_EXPIRED = {"type": "websocket.close", "code": 4440, "reason": "token_expired"}
CLOSE_REVOKED = {"type": "websocket.close", "code": 4441, "reason": "token_revoked"}
CLOSE_UNAVAILABLE = {"type": "websocket.close", "code": 4503, "reason": "auth_unavailable"}


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


async def picky_revocation_check(claims: Mapping[str, Any]) -> bool:
    """``revoked-*`` jtis are revoked; ``crash-*`` ones crash the check."""
    jti = str(claims["jti"])
    if jti.startswith("crash-"):
        raise ConnectionError("cache is down")
    return jti.startswith("revoked-")


class UnreachableLayer(InMemoryChannelLayer):
    """A layer whose server cannot be reached: every group operation fails."""

    async def group_add(self, group: str, channel: str) -> None:
        raise ConnectionError("layer is down")


class TokenGroupsFailLayer(InMemoryChannelLayer):
    """Joining a user group works; joining a token group fails (a layer dying mid-join)."""

    async def group_add(self, group: str, channel: str) -> None:
        if group.startswith("channels_jwt.token."):
            raise ConnectionError("layer is down")
        await super().group_add(group, channel)


class UndiscardableLayer(InMemoryChannelLayer):
    """Joining works; leaving fails (the layer died while the socket was open)."""

    async def group_discard(self, group: str, channel: str) -> None:
        raise ConnectionError("layer is down")


class DyingLayer(InMemoryChannelLayer):
    """A layer whose connection can be lost (``receive`` fails) or go down (groups fail)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lost = asyncio.Event()
        self.down = False

    def die(self) -> None:
        """Everything fails from now on: waiting receivers and group operations."""
        self.down = True
        self.lost.set()

    async def receive(self, channel: str) -> dict[str, Any]:
        await self.lost.wait()
        raise ConnectionError("layer connection lost")

    async def group_add(self, group: str, channel: str) -> None:
        if self.down:
            raise ConnectionError("layer is down")
        await super().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        if self.down:
            raise ConnectionError("layer is down")
        await super().group_discard(group, channel)


# Inner applications.


@dataclass
class RefreshingApp:
    """Accepts, then hands every text frame to ``scope["jwt"].refresh()`` and reports.

    It answers ``refreshed`` or ``refused <reason>``, and keeps the refused exceptions.
    """

    scopes: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[ChannelsJWTError] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            try:
                await scope["jwt"].refresh(message["text"])
            except ChannelsJWTError as exc:
                self.refusals.append(exc)
                await send({"type": "websocket.send", "text": f"refused {exc.reason}"})
            else:
                await send({"type": "websocket.send", "text": "refreshed"})

    @property
    def connection(self) -> JWTConnection:
        """The ``scope["jwt"]`` of the (first) connection."""
        connection: JWTConnection = self.scopes[0]["jwt"]
        return connection


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


class RefreshConsumer(TokenRefreshMixin, AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accepts; echoes every JSON frame the mixin passes on; undecodable text is echoed too."""

    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return {"undecodable": text_data}


# Helpers.


def token_for(user_id: Any = 1, **claims: Any) -> str:
    """A valid HS256 access token for ``user_id``; claims override (``...`` drops one)."""
    return hs_token(claims_for(user_id, **claims))


def expired_token_for(user_id: Any = 1) -> str:
    """A token for ``user_id`` that expired five minutes ago."""
    now = int(time.time())
    return token_for(user_id, iat=now - 600, exp=now - 300)


def soon(lead: float = 0.3) -> int:
    """An integer ``exp`` between ``lead`` and ``lead + 1`` seconds from now.

    JWT NumericDates are whole seconds here, as most issuers write them; ``lead`` keeps the
    token valid through the handshake.
    """
    return math.ceil(time.time() + lead)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pending_expiry_timers() -> int:
    """Timer handles of ``ConnectionGuard._on_timer`` still scheduled on the running loop.

    A cancelled handle stays in ``loop._scheduled`` until the loop drops it, but with its
    callback cleared, so only live ones match.
    """
    loop = asyncio.get_running_loop()
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return sum(
        1
        for handle in scheduled
        if not handle.cancelled()
        and getattr(handle._callback, "__func__", None)  # type: ignore[attr-defined]
        is ConnectionGuard._on_timer
    )


def live_objects(kind: type) -> int:
    """How many instances of ``kind`` are still alive, after a full collection."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


class Sockets:
    """Opens in-process connections and hangs up every one that is still running at the end."""

    def __init__(self) -> None:
        self.opened: list[ApplicationCommunicator] = []

    def communicator(self, app: Any, token: str | None, path: str = PATH) -> Any:
        offered = [MARKER, token] if token is not None else []
        communicator = ApplicationCommunicator(app, websocket_scope(path, subprotocols=offered))
        self.opened.append(communicator)
        return communicator

    async def open(self, app: Any, token: str) -> ApplicationCommunicator:
        """Connect with ``token`` and check the app's accept came through (marker named)."""
        communicator = self.communicator(app, token)
        await communicator.send_input({"type": "websocket.connect"})
        accept = await communicator.receive_output(TIMEOUT)
        assert accept == {"type": "websocket.accept", "subprotocol": MARKER}
        return communicator

    async def refused(self, app: Any, token: str) -> dict[str, Any]:
        """Connect with ``token``, expecting the middleware's accept-then-close: the close."""
        communicator = self.communicator(app, token)
        await communicator.send_input({"type": "websocket.connect"})
        accept = await communicator.receive_output(TIMEOUT)
        assert accept["type"] == "websocket.accept"
        close: dict[str, Any] = await communicator.receive_output(TIMEOUT)
        await communicator.wait(TIMEOUT)
        return close

    async def hang_up_all(self) -> None:
        for communicator in self.opened:
            if communicator._future is not None and not communicator.future.done():
                await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
                await communicator.wait(TIMEOUT)


async def hang_up(communicator: ApplicationCommunicator) -> None:
    """The client disconnects; wait for the application to return."""
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(TIMEOUT)


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


async def send_text(communicator: ApplicationCommunicator, text: str) -> None:
    await communicator.send_input({"type": "websocket.receive", "text": text})


@pytest.fixture
async def sockets() -> AsyncIterator[Sockets]:
    """Connections opened by a test; any still running are hung up afterwards."""
    opened = Sockets()
    yield opened
    await opened.hang_up_all()


Configure = Callable[..., None]


@pytest.fixture
def configure(settings: Any) -> Configure:
    """Set ``CHANNELS_JWT`` (the suite's key, stateless users, plus ``keys``).

    Every test also gets a fresh in-memory channel layer, a fresh local-memory default cache,
    and an ``unreachable`` cache alias: Django's Redis cache on a closed loopback port.
    """
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"channels-jwt-tests-{time.monotonic_ns()}",
        },
        "unreachable": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        },
    }

    def configure(**keys: Any) -> None:
        settings.CHANNELS_JWT = {
            **django_settings.CHANNELS_JWT,
            "USER_RESOLVER": "channels_jwt.users.token_user",
            **keys,
        }

    configure()
    return configure


@pytest.fixture
def layer_backend(settings: Any) -> Callable[[type], None]:
    """Switch the default channel layer to another backend class."""

    def use(backend: type) -> None:
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": f"{backend.__module__}.{backend.__qualname__}"}
        }

    return use


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


# TokenRefreshMixin.


async def open_consumer(token: str | None = None) -> WebsocketCommunicator:
    offered = [MARKER, token] if token is not None else []
    communicator = WebsocketCommunicator(
        JWTAuthMiddleware(RefreshConsumer.as_asgi()), PATH, subprotocols=offered
    )
    connected, _ = await communicator.connect(TIMEOUT)
    assert connected
    return communicator


@pytest.fixture
async def consumers(db: None) -> AsyncIterator[list[WebsocketCommunicator]]:
    """Consumer communicators opened by a test, disconnected afterwards.

    channels' consumers close stale database connections when they stop, hence ``db``.
    """
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        await communicator.disconnect(timeout=TIMEOUT)


async def test_mixin_answers_a_refresh_with_the_new_exp(
    configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    consumers.append(communicator := await open_consumer(token_for(1, exp=soon(60))))
    new_exp = soon(120)

    await communicator.send_json_to({"type": "token.refresh", "token": token_for(1, exp=new_exp)})

    assert await communicator.receive_json_from(TIMEOUT) == {
        "type": "token.refreshed",
        "expires_at": new_exp,
    }


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"type": "chat", "text": "hi"}', id="other-type"),
        pytest.param('{"type": "chat", "text": "token.refresh"}', id="mentions-refresh"),
        pytest.param('["token.refresh"]', id="not-an-object"),
        pytest.param('{"type": "token.refresh", ', id="bad-json"),
    ],
)
async def test_mixin_passes_other_frames_to_receive_json(
    text: str, configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    consumers.append(communicator := await open_consumer(token_for(1)))
    expected = await RefreshConsumer.decode_json(text)

    await communicator.send_to(text_data=text)

    assert await communicator.receive_json_from(TIMEOUT) == {"echo": expected}


REFUSED_REFRESH_CODES = [
    pytest.param(expired_token_for, 4440, id="expired-4440"),
    pytest.param(lambda: token_for(2), 4401, id="other-user-4401"),
    pytest.param(lambda: "not-a-jwt", 4400, id="garbage-4400"),
    pytest.param(lambda: token_for(1, jti="revoked-2"), 4441, id="revoked-4441"),
    pytest.param(lambda: token_for(1, jti="crash-2"), 4503, id="check-crashes-4503"),
]


@pytest.mark.parametrize(("make_token", "code"), REFUSED_REFRESH_CODES)
async def test_mixin_closes_with_the_refusals_code(
    make_token: Callable[[], str],
    code: int,
    configure: Configure,
    consumers: list[WebsocketCommunicator],
) -> None:
    configure(REVOCATION_CHECK=picky_revocation_check)
    consumers.append(communicator := await open_consumer(token_for(1)))

    await communicator.send_json_to({"type": "token.refresh", "token": make_token()})

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": code}


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param({"type": "token.refresh", "token": 5}, id="number"),
        pytest.param({"type": "token.refresh", "token": [token_for(1)]}, id="list"),
        pytest.param({"type": "token.refresh"}, id="missing"),
    ],
)
async def test_mixin_closes_4400_for_a_token_that_is_not_a_string(
    frame: dict[str, Any], configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    consumers.append(communicator := await open_consumer(token_for(1)))

    await communicator.send_json_to(frame)

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4400}


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        pytest.param(expired_token_for, "token_expired", id="expired"),
        pytest.param(lambda: 5, "token_malformed", id="not-a-string"),
    ],
)
async def test_mixin_applies_close_codes_overrides(
    make_token: Callable[[], Any],
    reason: str,
    configure: Configure,
    consumers: list[WebsocketCommunicator],
) -> None:
    configure(CLOSE_CODES={reason: 4001})
    consumers.append(communicator := await open_consumer(token_for(1)))

    await communicator.send_json_to({"type": "token.refresh", "token": make_token()})

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4001}


def test_close_code_for_an_unguarded_connection_is_the_default() -> None:
    connection = JWTConnection({"exp": 1}, "query")

    assert connection.close_code_for(TokenExpired()) == 4440


async def test_mixin_closes_4400_on_an_anonymous_connection(
    configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    configure(ALLOW_ANONYMOUS=True)
    consumers.append(communicator := await open_consumer(None))

    await communicator.send_json_to({"type": "token.refresh", "token": token_for(1)})

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4400}


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
        pytest.param({}, {"exp": 2_000_000_000, "user_id": "1"}, id="claims"),
        pytest.param({}, token_for(1, jti=...), id="token-without-revocation-settings"),
    ],
)
async def test_revoking_a_token_without_jti_raises_value_error(
    keys: dict[str, Any], claims_or_token: Any, configure: Configure
) -> None:
    configure(**keys)

    with pytest.raises(ValueError, match="jti"):
        await arevoke_token(claims_or_token)


@pytest.mark.parametrize(
    ("token", "error"),
    [
        pytest.param("not-a-jwt", TokenMalformed, id="garbage"),
        pytest.param(hs_token(claims_for(1), key=OTHER_KEY), TokenInvalid, id="bad-key"),
        pytest.param(token_for(1, jti=...), TokenInvalid, id="no-jti-with-revocation"),
    ],
)
async def test_revoking_a_bad_token_string_raises_its_error(
    token: str, error: type[Exception], configure: Configure
) -> None:
    configure(REVOCATION_CHECK=CACHE_DENYLIST)

    with pytest.raises(error):
        await arevoke_token(token)


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


# LIVE_REVOCATION on the in-memory layer.


async def test_disconnect_user_closes_that_users_sockets_with_4441(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    inner = RecordingApp()
    app = JWTAuthMiddleware(inner)
    first = await sockets.open(app, token_for(1))
    second = await sockets.open(app, token_for(1))

    await adisconnect_user(1)

    assert await first.receive_output(TIMEOUT) == CLOSE_REVOKED
    assert await second.receive_output(TIMEOUT) == CLOSE_REVOKED
    assert [(s["jwt"].close_code, s["jwt"].close_reason) for s in inner.scopes] == [
        (4441, "token_revoked")
    ] * 2


async def test_revocation_close_code_is_a_plain_int(configure: Configure, sockets: Sockets) -> None:
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))

    await adisconnect_user(1)

    assert type((await communicator.receive_output(TIMEOUT))["code"]) is int


async def test_disconnect_user_leaves_other_users_sockets_open(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    app = JWTAuthMiddleware(RecordingApp())
    doomed = await sockets.open(app, token_for(1))
    other = await sockets.open(app, token_for(2))

    await adisconnect_user(1)
    assert await doomed.receive_output(TIMEOUT) == CLOSE_REVOKED

    await send_text(other, "still here")
    assert await other.receive_output(TIMEOUT) == {"type": "websocket.send", "text": "still here"}


async def test_sync_disconnect_user_from_a_thread(configure: Configure, sockets: Sockets) -> None:
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))

    await sync_to_async(disconnect_user)("1")

    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED


async def test_revoke_token_closes_the_tokens_sockets_only(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    app = JWTAuthMiddleware(RecordingApp())
    claims = claims_for(1)
    revoked = [await sockets.open(app, hs_token(claims)) for _ in range(2)]
    kept = await sockets.open(app, token_for(1))

    await arevoke_token(claims)

    assert [await s.receive_output(TIMEOUT) for s in revoked] == [CLOSE_REVOKED] * 2
    assert await kept.receive_nothing(0.1)


async def test_after_refresh_revoking_the_old_token_leaves_the_socket_open(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    old = claims_for(1)
    communicator = await sockets.open(JWTAuthMiddleware(RefreshingApp()), hs_token(old))
    await send_text(communicator, token_for(1))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refreshed"

    await arevoke_token(old)

    assert await communicator.receive_nothing(0.1)


async def test_after_refresh_revoking_the_new_token_closes_the_socket(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    new = claims_for(1)
    communicator = await sockets.open(JWTAuthMiddleware(RefreshingApp()), token_for(1))
    await send_text(communicator, hs_token(new))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refreshed"

    await arevoke_token(new)

    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED


async def test_refresh_with_the_same_token_keeps_the_socket_revocable(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    claims = claims_for(1)
    communicator = await sockets.open(JWTAuthMiddleware(RefreshingApp()), hs_token(claims))
    await send_text(communicator, hs_token(claims))
    assert (await communicator.receive_output(TIMEOUT))["text"] == "refreshed"

    await arevoke_token(claims)

    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED


async def test_other_messages_on_the_groups_are_ignored(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))
    layer = get_channel_layer()

    await layer.group_send(user_group(1), {"type": "chat.message", "text": "hi"})
    quiet = await communicator.receive_nothing(0.1)
    await adisconnect_user(1)

    assert quiet
    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED


async def test_closed_socket_leaves_its_groups(configure: Configure, sockets: Sockets) -> None:
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))
    layer = get_channel_layer()
    joined = len(layer.groups)

    await hang_up(communicator)

    assert (joined, layer.groups) == (2, {})


async def test_unreachable_layer_closes_the_handshake_with_4503(
    configure: Configure,
    layer_backend: Callable[[type], None],
    sockets: Sockets,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    configure(LIVE_REVOCATION=True)
    layer_backend(UnreachableLayer)
    inner = RecordingApp()

    close = await sockets.refused(JWTAuthMiddleware(inner), token_for(1))

    assert close == CLOSE_UNAVAILABLE
    assert not inner.called
    assert (
        "WebSocket authentication unavailable: channel layer unavailable (ConnectionError)"
        in caplog.messages
    )


async def test_failed_join_leaves_the_groups_it_had_joined(
    configure: Configure, layer_backend: Callable[[type], None], sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    layer_backend(TokenGroupsFailLayer)

    close = await sockets.refused(JWTAuthMiddleware(RecordingApp()), token_for(1))

    assert close == CLOSE_UNAVAILABLE
    assert get_channel_layer().groups == {}


async def test_no_default_channel_layer_closes_the_handshake_with_4503(
    configure: Configure, settings: Any, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    settings.CHANNEL_LAYERS = {"other": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    close = await sockets.refused(JWTAuthMiddleware(RecordingApp()), token_for(1))

    assert close == CLOSE_UNAVAILABLE


async def test_disconnect_user_without_a_channel_layer_raises(
    configure: Configure, settings: Any
) -> None:
    settings.CHANNEL_LAYERS = {}

    with pytest.raises(ImproperlyConfigured, match="CHANNEL_LAYERS"):
        await adisconnect_user(1)


async def test_lost_layer_closes_the_open_socket_with_4503(
    configure: Configure,
    layer_backend: Callable[[type], None],
    sockets: Sockets,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    configure(LIVE_REVOCATION=True)
    layer_backend(DyingLayer)
    inner = RecordingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1))

    get_channel_layer().die()

    assert await communicator.receive_output(TIMEOUT) == CLOSE_UNAVAILABLE
    assert (inner.scopes[0]["jwt"].close_code, inner.scopes[0]["jwt"].close_reason) == (
        4503,
        "auth_unavailable",
    )
    assert "channels_jwt lost the channel layer: ConnectionError" in caplog.messages


async def test_failure_to_leave_the_groups_is_logged(
    configure: Configure,
    layer_backend: Callable[[type], None],
    sockets: Sockets,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    configure(LIVE_REVOCATION=True)
    layer_backend(UndiscardableLayer)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))

    await hang_up(communicator)

    assert caplog.messages.count("Leaving a channels_jwt group failed: ConnectionError") == 2


async def test_refresh_while_the_layer_is_down_is_refused_with_4503(
    configure: Configure, layer_backend: Callable[[type], None], sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True)
    layer_backend(DyingLayer)
    inner = RefreshingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1))
    claims_before = dict(inner.connection.claims)
    # Group operations fail; the listener has not noticed yet (no 4503 close so far).
    get_channel_layer().down = True

    await send_text(communicator, token_for(1))

    assert (await communicator.receive_output(TIMEOUT))["text"] == "refused auth_unavailable"
    assert [exc.close_code for exc in inner.refusals] == [4503]
    assert dict(inner.connection.claims) == claims_before


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
