"""``RATE_LIMIT`` with its counts in a real Redis: shared by two uvicorn processes.

Two uvicorn processes run ``tests.redis.asgi_app_ratelimit`` with ``tests.redis.server_settings``
(Django's cache in the session's Redis). A client that fails on one process is limited on the
other; concurrent failures spread over both are counted exactly. Each test connects from a
loopback address of its own (all of 127.0.0.0/8 is loopback on Linux), so no test inherits
another's counts. Then the failures of Redis itself: stopped, read-only (a replica: counting
is refused) and holding writes (``CLIENT PAUSE ... WRITE``: counting hangs until
``AUTH_TIMEOUT_SECONDS``). A handshake counts from its start, so each of them fails closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from asgiref.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware
from channels_jwt.users import token_user
from tests import harness
from tests.harness import (
    MARKER,
    RecordingApp,
    greeting_or_close,
    own_address,
    warnings_of,
    websocket_scope,
)
from tests.processes import free_port
from tests.redis.asgi_app_ratelimit import MANY_COUNT, RATE_COUNT
from tests.redis.conftest import RedisServer, RedisUsers, Server, own_redis, uvicorn_pair
from tests.redis.server_settings import SIGNING_KEY

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)

pytestmark = pytest.mark.live

APPLICATION = "tests.redis.asgi_app_ratelimit:application"
#: Seconds any single client step (handshake, frame, PING) may take.
TIMEOUT = 5.0
#: The ``AUTH_TIMEOUT_SECONDS`` of the in-process tests, and the slack over it.
AUTH_TIMEOUT = 0.3
MARGIN = 1.0
LIMITED = (4429, "rate_limited")
MALFORMED = (4400, "token_malformed")
UNAVAILABLE = (4503, "auth_unavailable")


@pytest.fixture(scope="module")
def limited_servers(
    redis_dir: Path, environment: dict[str, str], redis_users: RedisUsers
) -> Iterator[tuple[Server, Server]]:
    """Two uvicorn processes serving the rate-limited routes, sharing Redis and the DB."""
    names = ("uvicorn-limited-a", "uvicorn-limited-b")
    with uvicorn_pair(redis_dir, environment, APPLICATION, names) as pair:
        yield pair


async def test_failures_on_one_process_limit_the_address_on_the_other(
    limited_servers: tuple[Server, Server], redis_users: RedisUsers, redis_server: RedisServer
) -> None:
    a, b = limited_servers
    address = own_address()
    failures = [
        await greeting_or_close(a.url("/ws/limited/"), "not-a-jwt", address=address)
        for _ in range(RATE_COUNT)
    ]

    outcome = await greeting_or_close(
        b.url("/ws/limited/"), token_for(redis_users.alice), address=address
    )

    assert failures == [MALFORMED] * RATE_COUNT
    assert outcome == LIMITED


async def test_other_addresses_stay_welcome_on_both_processes(
    limited_servers: tuple[Server, Server], redis_users: RedisUsers, redis_server: RedisServer
) -> None:
    a, b = limited_servers
    limited_address = own_address()
    for server in (a, b, a)[:RATE_COUNT]:
        await greeting_or_close(server.url("/ws/limited/"), "not-a-jwt", address=limited_address)
    other = own_address()

    outcomes = [
        await greeting_or_close(
            server.url("/ws/limited/"), token_for(redis_users.bob), address=other
        )
        for server in (a, b)
    ]

    assert outcomes == [{"user": redis_users.bob}] * 2
    assert await greeting_or_close(
        a.url("/ws/limited/"), token_for(redis_users.bob), address=limited_address
    ) == (LIMITED)


async def test_concurrent_failures_on_both_processes_are_counted_exactly(
    limited_servers: tuple[Server, Server], redis_users: RedisUsers, redis_server: RedisServer
) -> None:
    a, b = limited_servers
    address = own_address()
    path = "/ws/limited-many/"
    # One short of the count, at once, alternating between the processes.
    failures = await asyncio.gather(
        *(
            greeting_or_close((a, b)[n % 2].url(path), "not-a-jwt", address=address)
            for n in range(MANY_COUNT - 1)
        )
    )
    assert failures == [MALFORMED] * (MANY_COUNT - 1)

    # Not over-counted: one failure short, a good token still gets in ...
    assert await greeting_or_close(a.url(path), token_for(redis_users.alice), address=address) == {
        "user": redis_users.alice
    }
    # ... and none lost: one more failure reaches the count.
    assert await greeting_or_close(b.url(path), "not-a-jwt", address=address) == MALFORMED
    assert (
        await greeting_or_close(a.url(path), token_for(redis_users.alice), address=address)
        == LIMITED
    )


async def test_limit_check_fails_closed_while_redis_is_down(
    limited_servers: tuple[Server, Server], redis_users: RedisUsers, redis_server: RedisServer
) -> None:
    a, _ = limited_servers
    redis_server.stop()

    outcome = await greeting_or_close(
        a.url("/ws/limited/"), token_for(redis_users.alice), address=own_address()
    )

    assert outcome == (4503, "auth_unavailable")


async def test_handshakes_succeed_again_once_redis_is_back(
    limited_servers: tuple[Server, Server], redis_users: RedisUsers, redis_server: RedisServer
) -> None:
    a, b = limited_servers
    redis_server.stop()
    during = await greeting_or_close(
        a.url("/ws/limited/"), token_for(redis_users.alice), address=own_address()
    )
    redis_server.start()

    outcomes = [
        await greeting_or_close(
            server.url("/ws/limited/"), token_for(redis_users.alice), address=own_address()
        )
        for server in (a, b)
    ]

    assert during == (4503, "auth_unavailable")
    assert outcomes == [{"user": redis_users.alice}] * 2


# Reading the count works, counting does not: a read-only replica, paused writes.


@contextmanager
def cache_on(client: redis.Redis) -> Iterator[str]:
    """A cache alias on ``client``'s server, in this (the test) process."""
    port = client.connection_pool.connection_kwargs["port"]
    caches = {
        "default": django_settings.CACHES["default"],
        "failing": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        },
    }
    with override_settings(CACHES=caches):
        yield "failing"


@pytest.fixture
def read_only_cache(tmp_path: Path) -> Iterator[str]:
    """A cache on a replica of a master that does not exist: reads work, writes are refused."""
    # Nothing listens on the master's port: the replica never syncs and stays read-only.
    with own_redis(tmp_path, "--replicaof", "127.0.0.1", str(free_port())) as client:
        with pytest.raises(redis.exceptions.ReadOnlyError):
            client.set("probe", 1)
        with cache_on(client) as alias:
            yield alias


@pytest.fixture
def unpaused_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    with own_redis(tmp_path) as client:
        yield client


@pytest.fixture
async def write_paused_cache(unpaused_redis: redis.Redis) -> AsyncIterator[str]:
    """A cache whose server holds every write (``CLIENT PAUSE ... WRITE``) but answers reads.

    Async, so writes resume before the test's event loop closes: closing waits for the worker
    thread still holding the abandoned write.
    """
    unpaused_redis.execute_command("CLIENT", "PAUSE", str(int(TIMEOUT * 1000)), "WRITE")
    try:
        with cache_on(unpaused_redis) as alias:
            yield alias
    finally:
        unpaused_redis.execute_command("CLIENT", "UNPAUSE")


def counting_on(alias: str) -> JWTAuthMiddleware:
    return JWTAuthMiddleware(
        RecordingApp(),
        settings={
            "RATE_LIMIT": f"{RATE_COUNT}/min",
            "RATE_LIMIT_CACHE": alias,
            "USER_RESOLVER": token_user,
            "AUTH_TIMEOUT_SECONDS": AUTH_TIMEOUT,
        },
    )


async def close_of(app: JWTAuthMiddleware, credential: str) -> Any:
    communicator = ApplicationCommunicator(
        app, websocket_scope(subprotocols=[MARKER, credential], client=("192.0.2.10", 5000))
    )
    await communicator.send_input({"type": "websocket.connect"})
    accept = await communicator.receive_output(TIMEOUT)
    assert accept["type"] == "websocket.accept"
    close = await communicator.receive_output(TIMEOUT)
    await communicator.wait(TIMEOUT)
    return close["code"], close["reason"]


async def test_a_cache_that_refuses_to_count_fails_closed(
    read_only_cache: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A handshake counts from its start (attempts in flight count): a cache that cannot
    # count cannot limit, and the handshake is refused as for a cache that is down.
    caplog.set_level(logging.INFO, logger="channels_jwt")

    outcomes = [await close_of(counting_on(read_only_cache), "not-a-jwt") for _ in range(2)]

    assert outcomes == [UNAVAILABLE] * 2
    assert (
        warnings_of(caplog)
        == ["WebSocket authentication unavailable: rate limit cache unavailable (ReadOnlyError)"]
        * 2
    )


async def test_a_held_count_is_given_up_after_the_timeout_with_4503(
    write_paused_cache: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels_jwt")
    started = time.monotonic()

    outcome = await close_of(counting_on(write_paused_cache), "not-a-jwt")
    elapsed = time.monotonic() - started

    assert outcome == UNAVAILABLE
    # The write was really held (not refused at once), and not for longer than the timeout.
    assert AUTH_TIMEOUT <= elapsed < AUTH_TIMEOUT + MARGIN
    assert warnings_of(caplog) == [
        f"WebSocket authentication unavailable: the rate limit check took over {AUTH_TIMEOUT:g} s"
    ]
