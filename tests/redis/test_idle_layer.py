"""Guarded sockets on channels_redis (core and pub/sub layers), in-process: idle, and Redis lost.

redis-py 8 gives every connection a socket timeout, and channels_redis 4.3's receive can
outlast it while nothing is sent: the layer's receive then raises a timeout although Redis is
fine. An idle socket must stay open (DESIGN.md section 7) and still be reached by
``disconnect_user`` afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.layers import channel_layers
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware, adisconnect_user
from channels_jwt.layerwatch import PROBE_SECONDS, WATCH_SECONDS
from channels_jwt.users import token_user
from tests.harness import MARKER, RecordingApp, close_message, hang_up, token_for, websocket_scope
from tests.redis.conftest import RedisServer
from tests.redis.server_settings import LAYER_BACKENDS

pytestmark = pytest.mark.live

LAYERS = LAYER_BACKENDS
#: Longer than every timeout under the layer (redis-py's default socket timeout is 5 s).
IDLE_SECONDS = 6.5


@contextmanager
def using_layer(name: str, redis_server: RedisServer, **config: Any) -> Iterator[None]:
    """``CHANNEL_LAYERS`` on the session's Redis with the channels_redis layer ``name``."""
    layer_config = {"hosts": [redis_server.url], **config}
    layers = {"default": {"BACKEND": LAYERS[name], "CONFIG": layer_config}}
    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.backends.clear()
        try:
            yield
        finally:
            channel_layers.backends.clear()


@pytest.fixture(params=sorted(LAYERS))
def redis_layer(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[str]:
    """Each channels_redis layer in turn."""
    with using_layer(request.param, redis_server):
        yield request.param


async def guarded_socket(user_id: int) -> ApplicationCommunicator:
    """An accepted in-process socket of ``user_id``, guarded with ``LIVE_REVOCATION``."""
    app = JWTAuthMiddleware(
        RecordingApp(), settings={"LIVE_REVOCATION": True, "USER_RESOLVER": token_user}
    )
    scope = websocket_scope(subprotocols=[MARKER, token_for(user_id, lifetime=120)])
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output(5))["type"] == "websocket.accept"
    return communicator


async def test_an_idle_guarded_socket_stays_open_and_reachable(redis_layer: str) -> None:
    user_id = 4_000_000 + int(time.time()) % 1000
    communicator = await guarded_socket(user_id)

    assert await communicator.receive_nothing(IDLE_SECONDS, interval=0.5)

    await adisconnect_user(user_id)
    closed: Any = await communicator.receive_output(5)
    assert closed == close_message(4441, "token_revoked")
    await hang_up(communicator)


async def test_a_layer_lost_while_idle_closes_with_4503(
    redis_layer: str, redis_server: RedisServer
) -> None:
    # The pub/sub layer's receive never raises while Redis is down: the watch's probe fails.
    communicator = await guarded_socket(4_100_000)
    assert await communicator.receive_nothing(1.5, interval=0.25)

    redis_server.stop()

    closed: Any = await communicator.receive_output(IDLE_SECONDS + 5)
    assert closed == close_message(4503, "auth_unavailable")
    await hang_up(communicator)


async def test_after_a_redis_restart_no_guarded_socket_is_left_open_and_unreachable(
    redis_layer: str, redis_server: RedisServer
) -> None:
    # Restarted without persistence, Redis has forgotten the core layer's group members: the
    # watch's probe goes to nobody, and the sockets close with 4503. The pub/sub layer
    # re-subscribes by itself within milliseconds: its sockets either close (a probe fell in
    # the gap) or are still reached. Never open and deaf.
    user_id = 4_150_000 + int(time.time()) % 1000
    communicator = await guarded_socket(user_id)
    assert await communicator.receive_nothing(1, interval=0.25)

    redis_server.stop()
    redis_server.start()
    closed_by_the_watch = not await communicator.receive_nothing(
        PROBE_SECONDS + WATCH_SECONDS + 2, interval=0.25
    )
    if not closed_by_the_watch:
        await adisconnect_user(user_id)

    closed: Any = await communicator.receive_output(5)
    expected = (4503, "auth_unavailable") if closed_by_the_watch else (4441, "token_revoked")
    assert closed == close_message(*expected)
    if redis_layer == "core":
        assert closed_by_the_watch
    await hang_up(communicator)


async def test_service_comes_back_with_redis(redis_layer: str, redis_server: RedisServer) -> None:
    communicator = await guarded_socket(4_170_000)
    redis_server.stop()
    assert await communicator.receive_output(PROBE_SECONDS + WATCH_SECONDS + 5) == close_message(
        4503, "auth_unavailable"
    )
    await hang_up(communicator)

    redis_server.start()

    user_id = 4_180_000 + int(time.time()) % 1000
    after = await guarded_socket(user_id)
    await adisconnect_user(user_id)
    assert await after.receive_output(5) == close_message(4441, "token_revoked")
    await hang_up(after)


async def test_a_socket_open_past_the_core_layers_group_expiry_is_still_reached(
    redis_server: RedisServer,
) -> None:
    # channels_redis drops group members after group_expiry; the socket re-joins in time.
    # (Idle for less than redis-py's 5 s socket timeout: no timed-out receive re-joins it.)
    with using_layer("core", redis_server, group_expiry=1):
        user_id = 4_200_000 + int(time.time()) % 1000
        communicator = await guarded_socket(user_id)
        assert await communicator.receive_nothing(3, interval=0.5)

        await adisconnect_user(user_id)

        closed: Any = await communicator.receive_output(5)
        assert closed == close_message(4441, "token_revoked")
        await hang_up(communicator)
