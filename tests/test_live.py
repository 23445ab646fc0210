"""Live revocation (``channels_jwt.live``): ``disconnect_user`` and ``revoke_token`` close
open sockets over the channel layer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured

from channels_jwt import (
    JWTAuthMiddleware,
    adisconnect_user,
    arevoke_token,
    disconnect_user,
)
from channels_jwt.live import LiveSubscription, rejoin_interval, token_group, user_group
from channels_jwt.users import token_user
from tests.harness import (
    CLOSE_REVOKED,
    CLOSE_UNAVAILABLE,
    LOGGER,
    TIMEOUT,
    Configure,
    RecordingApp,
    RefreshingApp,
    Sockets,
    claims_for,
    hang_up,
    hs_token,
    send_text,
    token_for,
    warnings_of,
)

#: The prefix of the per-process watch's own group (channels_jwt.layerwatch).
WATCH = "channels_jwt.watch."


def connection_groups() -> list[str]:
    """The groups of the default layer that connections joined (not the process's watch,
    which leaves its own once its task has seen the cancellation)."""
    return [group for group in get_channel_layer().groups if not group.startswith(WATCH)]


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


@pytest.fixture
def layer_backend(settings: Any) -> Callable[[type], None]:
    """Switch the default channel layer to another backend class."""

    def use(backend: type) -> None:
        settings.CHANNEL_LAYERS = {
            "default": {"BACKEND": f"{backend.__module__}.{backend.__qualname__}"}
        }

    return use


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
    assert connection_groups() == []


class StaleConnectionsLayer(InMemoryChannelLayer):
    """The first ``stale`` joins fail, as each stale pooled connection does after a restart."""

    stale = 0

    async def group_add(self, group: str, channel: str) -> None:
        if self.stale and not group.startswith(WATCH):
            self.stale -= 1
            raise ConnectionError("connection closed by server")
        await super().group_add(group, channel)


@pytest.mark.parametrize(("stale", "accepted"), [(2, True), (3, False)])
async def test_a_join_is_tried_three_times(
    configure: Configure,
    layer_backend: Callable[[type], None],
    sockets: Sockets,
    stale: int,
    accepted: bool,
) -> None:
    configure(LIVE_REVOCATION=True)
    layer_backend(StaleConnectionsLayer)
    get_channel_layer().stale = stale

    if accepted:
        await hang_up(await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1)))
    else:
        refused = await sockets.refused(JWTAuthMiddleware(RecordingApp()), token_for(1))
        assert refused == CLOSE_UNAVAILABLE
    assert connection_groups() == []


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


class HangingDiscardLayer(InMemoryChannelLayer):
    """Leaving a group never returns (a layer that stopped answering)."""

    async def group_discard(self, group: str, channel: str) -> None:
        await asyncio.Event().wait()


async def test_leaving_a_layer_that_does_not_answer_gives_up_in_time(
    configure: Configure,
    layer_backend: Callable[[type], None],
    sockets: Sockets,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("channels_jwt.live.PROBE_SECONDS", 0.2)
    caplog.set_level(logging.INFO, logger=LOGGER)
    configure(LIVE_REVOCATION=True)
    layer_backend(HangingDiscardLayer)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))

    await hang_up(communicator)  # the application has returned within TIMEOUT

    assert "Leaving a channels_jwt group failed: TimeoutError" in caplog.messages


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


# Group membership outlives the layer's group_expiry (issue 15, item 3).


async def test_a_socket_open_past_the_group_expiry_is_still_reached(
    configure: Configure, sockets: Sockets, settings: Any
) -> None:
    # Layers drop members after group_expiry (a day by default): a socket kept open longer,
    # as in-band refresh allows, was reached by nothing.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"group_expiry": 1},
        }
    }
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))

    assert await communicator.receive_nothing(2.5, interval=0.25)
    await adisconnect_user(1)

    assert await communicator.receive_output(TIMEOUT) == CLOSE_REVOKED


class ExpiringLayer(InMemoryChannelLayer):
    """A connection's joins work until ``down``, then fail; members expire after one second.

    The process's watch (its own group) is not affected: the connection's own re-join finds
    the failure.
    """

    down = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(group_expiry=1, **kwargs)

    async def group_add(self, group: str, channel: str) -> None:
        if ExpiringLayer.down and not group.startswith(WATCH):
            raise ConnectionError("layer is down")
        await super().group_add(group, channel)


async def test_a_failed_rejoin_closes_with_4503(
    configure: Configure,
    sockets: Sockets,
    layer_backend: Callable[[type], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    layer_backend(ExpiringLayer)
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))

    monkeypatch.setattr(ExpiringLayer, "down", True)

    assert await communicator.receive_output(TIMEOUT) == CLOSE_UNAVAILABLE
    assert "channels_jwt lost the channel layer: re-joining its groups failed" in caplog.messages


def test_layers_without_a_group_expiry_are_never_rejoined() -> None:
    assert rejoin_interval(InMemoryChannelLayer(group_expiry=0)) is None
    assert rejoin_interval(object()) is None  # type: ignore[arg-type]
    assert rejoin_interval(InMemoryChannelLayer(group_expiry=90)) == 30


# No window between the handshake's checks and its group join (issue 15, item 2).


def revoking_resolver(revoke: Callable[[Any], Any]) -> Callable[..., Any]:
    """A resolver that lets ``revoke(claims)`` run before it answers, as a view would,
    between the handshake's own revocation check and its group join."""

    async def resolver(claims: Any, scope: Any) -> Any:
        await revoke(claims)
        return await token_user(claims, scope)

    return resolver


async def test_a_token_revoked_between_the_checks_and_the_join_is_refused(
    configure: Configure, sockets: Sockets
) -> None:
    configure(LIVE_REVOCATION=True, USER_RESOLVER=revoking_resolver(arevoke_token))

    refused = await sockets.refused(JWTAuthMiddleware(RecordingApp()), token_for(1))

    assert refused == CLOSE_REVOKED


async def test_a_user_disconnected_between_the_checks_and_the_join_is_refused(
    configure: Configure, sockets: Sockets
) -> None:
    async def disconnect(claims: Any) -> None:
        await adisconnect_user(claims["user_id"])

    configure(LIVE_REVOCATION=True, USER_RESOLVER=revoking_resolver(disconnect))
    inner = RecordingApp()

    refused = await sockets.refused(JWTAuthMiddleware(inner), token_for(1))

    assert refused == CLOSE_REVOKED
    assert inner.scopes == []


async def test_a_user_disconnected_before_the_handshake_may_connect_again(
    configure: Configure, sockets: Sockets
) -> None:
    # disconnect_user ends the sockets open when it runs; it does not refuse later handshakes.
    configure(LIVE_REVOCATION=True, USER_RESOLVER="channels_jwt.users.token_user")
    await adisconnect_user(1)

    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))

    assert await communicator.receive_nothing(0.2)


class SlowCache(LocMemCache):
    """A cache whose reads take a second (a store that hangs)."""

    def get_many(self, keys: Any, version: int | None = None) -> dict[str, Any]:
        time.sleep(1)
        return {}


async def test_a_hanging_check_after_the_join_closes_4503_within_the_timeout(
    configure: Configure, sockets: Sockets, settings: Any
) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "slow": {"BACKEND": "tests.test_live.SlowCache", "LOCATION": "slow"},
    }
    configure(
        LIVE_REVOCATION=True,
        USER_RESOLVER="channels_jwt.users.token_user",
        REVOCATION_CACHE="slow",
        AUTH_TIMEOUT_SECONDS=0.3,
    )
    started = time.monotonic()

    refused = await sockets.refused(JWTAuthMiddleware(RecordingApp()), token_for(1))

    assert refused == CLOSE_UNAVAILABLE
    assert time.monotonic() - started < 0.9
    assert connection_groups() == []


class SlowJoinLayer(InMemoryChannelLayer):
    """Joining a group takes ``JOIN_SECONDS`` (a layer slow to answer); zero by default."""

    join_seconds = 0.0

    async def group_add(self, group: str, channel: str) -> None:
        await asyncio.sleep(self.join_seconds)
        await super().group_add(group, channel)


async def slow_token_user(claims: Any, scope: Any) -> Any:
    await asyncio.sleep(0.3)
    return await token_user(claims, scope)


@pytest.mark.parametrize(
    ("resolver_seconds", "join_seconds", "accepted"),
    [(0.3, 0.0, True), (0.0, 0.3, True), (0.3, 0.3, False), (0.0, 60.0, False)],
)
async def test_the_join_shares_the_handshakes_deadline(
    configure: Configure,
    layer_backend: Callable[[type], None],
    sockets: Sockets,
    resolver_seconds: float,
    join_seconds: float,
    accepted: bool,
) -> None:
    # AUTH_TIMEOUT_SECONDS bounds the whole handshake: the lookup and the join together.
    resolver = "tests.test_live.slow_token_user" if resolver_seconds else token_user
    configure(LIVE_REVOCATION=True, USER_RESOLVER=resolver, AUTH_TIMEOUT_SECONDS=0.5)
    layer_backend(SlowJoinLayer)
    get_channel_layer().join_seconds = join_seconds
    started = time.monotonic()

    if accepted:
        await hang_up(await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1)))
    else:
        refused = await sockets.refused(JWTAuthMiddleware(RecordingApp()), token_for(1))
        assert refused == CLOSE_UNAVAILABLE
        assert time.monotonic() - started < 0.9
    assert connection_groups() == []


class UnreadableCache(LocMemCache):
    """A cache that takes writes but cannot be read (``get_many`` fails)."""

    def get_many(self, keys: Any, version: int | None = None) -> dict[str, Any]:
        raise ConnectionError("cache is down")


async def test_a_failing_check_after_the_join_leaves_the_groups(
    configure: Configure, sockets: Sockets, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    settings.CACHES = {
        **settings.CACHES,
        "unreadable": {"BACKEND": "tests.test_live.UnreadableCache", "LOCATION": "unreadable"},
    }
    configure(
        LIVE_REVOCATION=True,
        USER_RESOLVER="channels_jwt.users.token_user",
        REVOCATION_CACHE="unreadable",
    )

    refused = await sockets.refused(JWTAuthMiddleware(RecordingApp()), token_for(1))

    assert refused == CLOSE_UNAVAILABLE
    assert connection_groups() == []
    assert warnings_of(caplog) == [
        "WebSocket authentication unavailable: revocation check failed (ConnectionError)"
    ]


class GatedLayer(InMemoryChannelLayer):
    """Joining ``gated_group`` waits for ``gate`` (a re-join caught mid-way)."""

    gated_group = ""
    gate: asyncio.Event | None = None

    async def group_add(self, group: str, channel: str) -> None:
        if group == GatedLayer.gated_group and GatedLayer.gate is not None:
            await GatedLayer.gate.wait()
        await super().group_add(group, channel)


async def test_a_rejoin_never_restores_a_group_a_refresh_has_left(
    layer_backend: Callable[[type], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    layer_backend(GatedLayer)

    async def nothing() -> None:
        return None

    old, new = claims_for(1, jti="old"), claims_for(1, jti="new")
    subscription = LiveSubscription(nothing, nothing)
    await subscription.join(1, old)
    gate = asyncio.Event()
    monkeypatch.setattr(GatedLayer, "gated_group", token_group(old))
    monkeypatch.setattr(GatedLayer, "gate", gate)

    rejoining = asyncio.ensure_future(subscription._rejoin())
    await asyncio.sleep(0.05)  # the re-join now waits inside the old token group's join
    await subscription.replace_token(old, new)
    gate.set()
    await rejoining

    groups = get_channel_layer().groups
    assert token_group(old) not in groups
    assert token_group(new) in groups
    await subscription.leave()
