"""``database_user`` on a real PostgreSQL server, behind a real uvicorn, for real clients.

Every test runs once per connection mode (``conftest.MODES``): ``CONN_MAX_AGE=0`` (a new
connection per handshake), persistent connections with ``CONN_HEALTH_CHECKS``, and, as the
contrast, persistent connections without health checks. The database outage is real: the
PostgreSQL server is stopped under the running uvicorn, and started again on the same port
with the same data (or its connections are cut with ``pg_terminate_backend``); uvicorn is
never restarted. What differs between the modes is written in ``ConnectionMode`` and
asserted here, so a change in Django, Channels or psycopg shows up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest

from tests import harness
from tests.harness import claims_for, greeting_or_close, hs_token, log_containing, tagged
from tests.postgres.conftest import DATABASE, PostgresSite, PostgresUsers
from tests.postgres.server import PostgresServer
from tests.postgres.server_settings import SIGNING_KEY

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)

pytestmark = [pytest.mark.postgresql, pytest.mark.live]

#: Seconds any single client step (handshake, frame, close, log line) may take.
TIMEOUT = 5.0
#: A refused database is answered at once: well within this, and far below the 10 s
#: ``AUTH_TIMEOUT_SECONDS`` that a hanging one would take.
PROMPT = 1.0
UNAVAILABLE = (4503, "auth_unavailable")
REJECTED = (4403, "user_rejected")
INVALID = (4401, "token_invalid")


async def greeting(site: PostgresSite) -> dict[str, Any]:
    """A handshake of the active user that must succeed: its greeting frame."""
    outcome = await greeting_or_close(site.server.url("/ws/pg/"), token_for(site.users.active))
    assert isinstance(outcome, dict), outcome
    return outcome


def active_user(site: PostgresSite) -> dict[str, Any]:
    """The ``user`` of the active user's greeting."""
    return {"pk": site.users.active, "username": "carol-pg", "active": True}


async def open_connections_become(postgres: PostgresServer, expected: int) -> int:
    """Poll until the servers hold ``expected`` connections to the database; the last count.

    A connection Django closed ends its backend a moment later, so a count right after a
    handshake can still include it.
    """
    deadline = time.monotonic() + TIMEOUT
    while (count := await asyncio.to_thread(postgres.client_connections, DATABASE)) != expected:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    return count


@asynccontextmanager
async def database_stopped(postgres: PostgresServer) -> AsyncIterator[None]:
    """PostgreSQL is down while the block runs; started again (same port, same data) after."""
    await asyncio.to_thread(postgres.stop)
    try:
        yield
    finally:
        await asyncio.to_thread(postgres.start)


# Users.


async def test_active_user_is_accepted_and_handed_to_the_application(site: PostgresSite) -> None:
    assert (await greeting(site))["user"] == active_user(site)


def named(role: str) -> Callable[[PostgresUsers], Any]:
    """The primary key of the live user with this ``role`` (``active`` or ``inactive``)."""
    return lambda users: getattr(users, role)


def literally(value: Any) -> Callable[[PostgresUsers], Any]:
    """This JSON value as the user id claim."""
    return lambda users: value


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        pytest.param(named("inactive"), REJECTED, id="inactive"),
        pytest.param(literally("987654"), REJECTED, id="unknown"),
        # Past auth_user.id's 32-bit column: Django answers "no rows" without a query
        # (not "integer out of range", which would be 4503).
        pytest.param(literally(str(2**31)), REJECTED, id="beyond-the-pk-column"),
        pytest.param(literally(True), INVALID, id="bad-type-true"),
        pytest.param(literally(1.0), INVALID, id="bad-type-float"),
        pytest.param(literally("1 OR 1=1"), INVALID, id="bad-type-sql"),
        pytest.param(literally([1]), INVALID, id="bad-type-list"),
    ],
)
async def test_refused_users_and_ids(
    site: PostgresSite, user_id: Callable[[PostgresUsers], Any], expected: tuple[int, str]
) -> None:
    claims = claims_for()
    claims["user_id"] = user_id(site.users)
    assert (
        await greeting_or_close(site.server.url("/ws/pg/"), hs_token(claims, key=SIGNING_KEY))
        == expected
    )


# Connections.


async def test_persistent_connections_are_reused_across_handshakes(site: PostgresSite) -> None:
    first, second = await greeting(site), await greeting(site)

    same_backend = first["backend_pid"] == second["backend_pid"]
    kept_open = 1 if site.mode.reuses_connection else 0

    assert same_backend is site.mode.reuses_connection
    assert await open_connections_become(site.postgres, kept_open) == kept_open


# The database goes down under the running server.


async def test_database_down_closes_4503_promptly_and_the_next_handshake_is_served(
    site: PostgresSite,
) -> None:
    await greeting(site)  # a persistent connection, where the mode keeps one
    async with database_stopped(site.postgres):
        started = time.monotonic()
        during = await greeting_or_close(site.server.url("/ws/pg/"), token_for(site.users.active))
        elapsed = time.monotonic() - started
    after = await greeting_or_close(site.server.url("/ws/pg/"), token_for(site.users.active))

    assert during == UNAVAILABLE
    assert elapsed < PROMPT
    # In every mode: a lookup during the outage already dropped the dead connection.
    assert after["user"] == active_user(site)


async def test_database_down_is_logged_as_a_lookup_failure_without_token_or_traceback(
    site: PostgresSite,
) -> None:
    path, token = tagged("pg"), token_for(site.users.active)
    async with database_stopped(site.postgres):
        await greeting_or_close(site.server.url(path), token)
        log = await log_containing(
            site.server.log, f"code=4503 source=subprotocol path={path} ", name="uvicorn"
        )

    (line,) = [line for line in log.splitlines() if f"path={path} " in line and "4503" in line]
    assert "user lookup failed (OperationalError)" in log
    assert token not in log
    assert "Traceback" not in log
    assert line.startswith("WebSocket authentication failed: auth_unavailable")


async def test_handshakes_succeed_after_a_restart_no_handshake_saw(site: PostgresSite) -> None:
    # A quick restart or a failover between two handshakes: a persistent connection from
    # before it is dead, and nothing has noticed yet.
    await greeting(site)
    async with database_stopped(site.postgres):
        pass

    first = await greeting_or_close(site.server.url("/ws/pg/"), token_for(site.users.active))
    second = await greeting_or_close(site.server.url("/ws/pg/"), token_for(site.users.active))

    if site.mode.refuses_first_after_restart:
        assert first == UNAVAILABLE
    else:
        assert first["user"] == active_user(site)
    assert second["user"] == active_user(site)


async def test_handshakes_succeed_after_the_connections_are_terminated(
    site: PostgresSite,
) -> None:
    await greeting(site)
    kept_open = 1 if site.mode.reuses_connection else 0
    await open_connections_become(site.postgres, kept_open)

    terminated = await asyncio.to_thread(site.postgres.terminate_backends, DATABASE)
    first = await greeting_or_close(site.server.url("/ws/pg/"), token_for(site.users.active))
    second = await greeting_or_close(site.server.url("/ws/pg/"), token_for(site.users.active))

    assert terminated == kept_open
    if site.mode.refuses_first_after_restart:
        assert first == UNAVAILABLE
    else:
        assert first["user"] == active_user(site)
    assert second["user"] == active_user(site)
