"""Revocation across processes with a real Redis: two uvicorn servers and a third process.

The servers share Redis for Django's cache (``REVOCATION_CHECK=cache_denylist``) and for the
channels_redis layer (``LIVE_REVOCATION``). ``disconnect_user`` and ``revoke_token`` run in a
third process, as a view, a task or a management command would. Then Redis is stopped under
the servers, and started again on the same port.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from functools import partial

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from channels_jwt.revocation import denylist_key
from tests import harness
from tests.harness import MARKER, claims_for, hs_token
from tests.redis.conftest import RedisServer, RedisUsers, Server, ThirdProcess
from tests.redis.server_settings import SIGNING_KEY

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)

pytestmark = pytest.mark.live

PATH = "/ws/echo/"
#: Seconds any single client step (handshake, frame) may take.
TIMEOUT = 5.0
#: Seconds a live revocation may take to reach a socket (DESIGN: 2 s, even for 2,000 sockets;
#: see test_scale.py). Usually a few milliseconds.
REVOKE_TIMEOUT = 2.0
#: Seconds a lost Redis may take to close a socket: the watch's probe is given 5 s.
OUTAGE_TIMEOUT = 10.0
REVOKED = (4441, "token_revoked")
UNAVAILABLE = (4503, "auth_unavailable")


@pytest.fixture
async def sockets() -> AsyncIterator[AsyncExitStack]:
    """Client connections a test opens; all closed at the end."""
    async with AsyncExitStack() as stack:
        yield stack


async def open_socket(stack: AsyncExitStack, server: Server, token: str) -> ClientConnection:
    """An open, authenticated socket on ``server`` (its greeting frame already read)."""
    ws = await stack.enter_async_context(
        connect(
            server.url(PATH),
            subprotocols=[MARKER, token],  # type: ignore[list-item]
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )
    )
    greeting = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert set(greeting) == {"user", "jti"}
    return ws


async def close_of(ws: ClientConnection, within: float) -> tuple[int, str]:
    """The code and reason of the server's close, waiting at most ``within`` seconds for it."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), within)
    frame: Close | None = closed.value.rcvd
    assert frame is not None, "no close frame received"
    return frame.code, frame.reason


async def closes_of(
    sockets: list[ClientConnection], what: str, within: float = REVOKE_TIMEOUT
) -> list[tuple[int, str]]:
    """The closes of ``sockets`` (awaited together); prints how long the last one took."""
    started = time.monotonic()
    closes = await asyncio.gather(*(close_of(ws, within) for ws in sockets))
    print(f"\n{what}: {len(sockets)} sockets closed within {time.monotonic() - started:.3f}s")
    return list(closes)


async def is_open(ws: ClientConnection) -> bool:
    """Whether the socket still answers a frame with its echo."""
    try:
        await ws.send(json.dumps({"type": "ping"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    except ConnectionClosed:
        return False
    return bool(reply == {"echo": {"type": "ping"}})


async def handshake_close(server: Server, token: str) -> tuple[int, str] | None:
    """Connect with ``token``: ``None`` if the socket opens, else the close (code, reason)."""
    async with connect(
        server.url(PATH),
        subprotocols=[MARKER, token],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ) as ws:
        try:
            json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        except ConnectionClosed as closed:
            frame = closed.rcvd
        else:
            return None
    assert frame is not None, "no close frame received"
    return frame.code, frame.reason


async def test_disconnect_user_from_a_third_process_closes_the_users_sockets_on_both_servers(
    servers: tuple[Server, Server],
    redis_users: RedisUsers,
    redis_server: RedisServer,
    third_process: ThirdProcess,
    sockets: AsyncExitStack,
) -> None:
    alices = [
        await open_socket(sockets, server, token_for(redis_users.alice)) for server in servers
    ]

    third_process("disconnect-user", str(redis_users.alice))

    assert await closes_of(alices, "disconnect_user") == [REVOKED, REVOKED]


async def test_disconnect_user_from_a_third_process_leaves_other_users_sockets_open(
    servers: tuple[Server, Server],
    redis_users: RedisUsers,
    redis_server: RedisServer,
    third_process: ThirdProcess,
    sockets: AsyncExitStack,
) -> None:
    alices = [
        await open_socket(sockets, server, token_for(redis_users.alice)) for server in servers
    ]
    bobs = [await open_socket(sockets, server, token_for(redis_users.bob)) for server in servers]

    third_process("disconnect-user", str(redis_users.alice))
    await closes_of(alices, "disconnect_user")  # both servers have handled it by now

    assert [await is_open(ws) for ws in bobs] == [True, True]


async def test_revoke_token_from_a_third_process_closes_that_tokens_sockets(
    servers: tuple[Server, Server],
    redis_users: RedisUsers,
    redis_server: RedisServer,
    third_process: ThirdProcess,
    sockets: AsyncExitStack,
) -> None:
    token = token_for(redis_users.alice)
    revoked = [await open_socket(sockets, server, token) for server in servers]

    third_process("revoke-token", stdin=token)

    assert await closes_of(revoked, "revoke_token") == [REVOKED, REVOKED]


async def test_revoke_token_from_a_third_process_leaves_the_users_other_tokens_open(
    servers: tuple[Server, Server],
    redis_users: RedisUsers,
    redis_server: RedisServer,
    third_process: ThirdProcess,
    sockets: AsyncExitStack,
) -> None:
    token = token_for(redis_users.alice)
    revoked = [await open_socket(sockets, server, token) for server in servers]
    others = [
        await open_socket(sockets, server, token_for(redis_users.alice)) for server in servers
    ]

    third_process("revoke-token", stdin=token)
    await closes_of(revoked, "revoke_token")  # both servers have handled it by now

    assert [await is_open(ws) for ws in others] == [True, True]


async def test_revoked_token_is_refused_at_the_next_handshake_on_both_servers(
    servers: tuple[Server, Server],
    redis_users: RedisUsers,
    redis_server: RedisServer,
    third_process: ThirdProcess,
) -> None:
    token = token_for(redis_users.alice)

    third_process("revoke-token", stdin=token)

    assert [await handshake_close(server, token) for server in servers] == [REVOKED, REVOKED]


async def test_denylist_entry_in_redis_expires_with_the_token(
    redis_users: RedisUsers, redis_server: RedisServer, third_process: ThirdProcess
) -> None:
    claims = claims_for(redis_users.alice, exp=int(time.time()) + 120)

    third_process("revoke-token", stdin=hs_token(claims, key=SIGNING_KEY))

    # Django's cache keys are "<KEY_PREFIX>:<VERSION>:<key>", so ":1:<key>" by default.
    client = redis_server.client()
    try:
        ttl = client.ttl(f":1:{denylist_key(claims)}")
    finally:
        client.close()
    assert 100 <= ttl <= 121


async def test_established_sockets_are_closed_with_4503_when_redis_stops(
    servers: tuple[Server, Server],
    redis_users: RedisUsers,
    redis_server: RedisServer,
    sockets: AsyncExitStack,
) -> None:
    established = [
        await open_socket(sockets, server, token_for(redis_users.alice)) for server in servers
    ]

    redis_server.stop()

    closes = await closes_of(established, "Redis stopped", within=OUTAGE_TIMEOUT)
    assert closes == [UNAVAILABLE, UNAVAILABLE]


async def test_new_handshakes_get_4503_while_redis_is_down(
    servers: tuple[Server, Server], redis_users: RedisUsers, redis_server: RedisServer
) -> None:
    redis_server.stop()

    closes = [await handshake_close(server, token_for(redis_users.alice)) for server in servers]

    assert closes == [UNAVAILABLE, UNAVAILABLE]


async def test_handshakes_succeed_again_after_redis_restarts(
    servers: tuple[Server, Server], redis_users: RedisUsers, redis_server: RedisServer
) -> None:
    # A handshake first, so each server holds pooled Redis connections that the restart breaks.
    before = [await handshake_close(server, token_for(redis_users.alice)) for server in servers]
    redis_server.stop()
    while_down = [await handshake_close(server, token_for(redis_users.alice)) for server in servers]

    redis_server.start()
    after_restart = [
        await handshake_close(server, token_for(redis_users.alice)) for server in servers
    ]

    assert before == [None, None]
    assert while_down == [UNAVAILABLE, UNAVAILABLE]
    assert after_restart == [None, None]


async def test_live_revocation_works_again_after_redis_restarts(
    servers: tuple[Server, Server],
    redis_users: RedisUsers,
    redis_server: RedisServer,
    third_process: ThirdProcess,
    sockets: AsyncExitStack,
) -> None:
    redis_server.stop()
    redis_server.start()
    alices = [
        await open_socket(sockets, server, token_for(redis_users.alice)) for server in servers
    ]

    third_process("disconnect-user", str(redis_users.alice))

    assert await closes_of(alices, "disconnect_user after restart") == [REVOKED, REVOKED]
