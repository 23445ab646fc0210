"""simplejwt's logout closes sockets across processes, with a real Redis.

Two uvicorn servers run with ``tests.redis.logout_settings`` (the Redis suite's settings plus
simplejwt's blacklist app, whose tables live in a SQLite file of their own); a third process
logs the user in and out through simplejwt only (``RefreshToken.for_user``,
``RefreshToken(token).blacklist()``). channels_jwt's receiver, connected by its app config with
no configuration, is what reaches the servers' sockets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.processes import create_users
from tests.redis.conftest import (
    APPLICATION,
    RedisServer,
    Server,
    process_environment,
    run_command,
    uvicorn_pair,
)
from tests.redis.test_redis import REVOKED, closes_of, is_open, open_socket
from tests.redis.test_redis import sockets as sockets  # the fixture: closes what a test opens

pytestmark = pytest.mark.live

SETTINGS = "tests.redis.logout_settings"


@pytest.fixture(scope="module")
def logout_environment(redis_dir: Path, redis_session: RedisServer) -> dict[str, str]:
    """The environment of this module's processes: the Redis suite's, with its settings."""
    return {
        **process_environment(redis_dir, redis_session.url),
        "DJANGO_SETTINGS_MODULE": SETTINGS,
    }


@pytest.fixture(scope="module")
def dora(logout_environment: dict[str, str]) -> int:
    """Migrate the logout database (simplejwt's tables too) and create a user; her pk."""
    return create_users(logout_environment, {"dora-logout": {}})["dora-logout"]


@pytest.fixture(scope="module")
def logout_servers(
    redis_dir: Path, logout_environment: dict[str, str], dora: int
) -> Iterator[tuple[Server, Server]]:
    """Two uvicorn processes with simplejwt's blacklist app, sharing Redis and the database."""
    with uvicorn_pair(redis_dir, logout_environment, APPLICATION, ("logout-a", "logout-b")) as pair:
        yield pair


def simplejwt_process(environment: dict[str, str], *args: str, stdin: str = "") -> str:
    """Run ``python -m tests.redis.logout_command ARGS``; its standard output."""
    return run_command("tests.redis.logout_command", environment, *args, stdin=stdin)


async def test_the_last_logout_through_simplejwt_closes_the_users_sockets_on_both_servers(
    logout_servers: tuple[Server, Server],
    logout_environment: dict[str, str],
    dora: int,
    redis_server: RedisServer,
    sockets: AsyncExitStack,
) -> None:
    laptop, phone = [
        json.loads(simplejwt_process(logout_environment, "login", str(dora))) for _ in range(2)
    ]
    server_a, server_b = logout_servers
    opened = [
        await open_socket(sockets, server_a, laptop["access"]),
        await open_socket(sockets, server_b, phone["access"]),
    ]

    simplejwt_process(logout_environment, "logout", stdin=laptop["refresh"])
    assert [await is_open(ws) for ws in opened] == [True, True]  # the phone is logged in

    simplejwt_process(logout_environment, "logout", stdin=phone["refresh"])
    assert await closes_of(opened, "simplejwt logout") == [REVOKED, REVOKED]
    for server in logout_servers:
        assert laptop["access"] not in server.log()
