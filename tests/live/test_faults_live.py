"""Faults and the rate limit on real servers (every one of ``SERVERS``), driven by ``websockets``.

The servers run ``tests.live.asgi_app_faults`` on a SQLite database of this module's own (a
separate directory, migrated like the shared one), so moving that file away, which is what
the outage tests do, never touches the other live tests. The rate-limit tests connect from an
address of their own in 127.0.0.0/8 (the whole block is loopback on Linux), so the failure
counts of one test never limit another.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests import harness
from tests.harness import greeting_or_close, log_containing, open_socket, own_address, tagged
from tests.live.asgi_app_faults import HANG_TIMEOUT, RATE_COUNT
from tests.live.conftest import (
    LiveServer,
    LiveUsers,
    prepare_database,
    running_server,
)
from tests.live.server_settings import SIGNING_KEY
from tests.live.servers import BEHAVIOUR, SERVERS

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)

pytestmark = pytest.mark.live

APPLICATION = "tests.live.asgi_app_faults:application"
#: Seconds any single client step (handshake, frame, close, log line) may take.
TIMEOUT = 5.0
#: How late after the route's ``AUTH_TIMEOUT_SECONDS`` the close may reach the client.
MARGIN = 1.0


@pytest.fixture(scope="module")
def fault_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own live directory: its SQLite file and the server logs."""
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def fault_users(fault_dir: Path) -> LiveUsers:
    """Migrate this module's database and create its active and inactive users."""
    return prepare_database(fault_dir)


@pytest.fixture(scope="module", params=SERVERS)
def fault_server(
    request: pytest.FixtureRequest, fault_dir: Path, fault_users: LiveUsers
) -> Iterator[LiveServer]:
    """Each server of ``SERVERS`` serving ``tests.live.asgi_app_faults``, once per module."""
    with running_server(request.param, fault_dir, APPLICATION) as server:
        yield server


# Helpers.


async def upgrade_status(
    server: LiveServer, path: str, credential: str, address: str
) -> tuple[int, Any]:
    """Connect: ``(101, greeting)`` if upgraded, else the refusal's status and JSON body."""
    try:
        async with open_socket(server.url(path), credential, address=address) as ws:
            return 101, json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    except InvalidStatus as refused:
        response = refused.response
        is_json = response.headers.get("Content-Type") == "application/json"
        return response.status_code, json.loads(response.body) if is_json else None


def closed_with(server: LiveServer, code: int, reason: str) -> tuple[int, str]:
    """The ``(code, reason)`` the client sees from ``server`` (daphne drops reasons)."""
    return code, reason if BEHAVIOUR[server.name].passes_close_reasons else ""


# The database goes away under a running server.


@contextmanager
def database_moved_away(fault_dir: Path) -> Iterator[Path]:
    """Rename the servers' SQLite file; put it back afterwards, whatever happens.

    The servers open a new connection per lookup (``CONN_MAX_AGE=0``): SQLite then creates an
    empty file at the old path, and the lookup fails with "no such table".
    """
    database = fault_dir / "db.sqlite3"
    away = fault_dir / "db.sqlite3.away"
    database.rename(away)
    try:
        yield database
    finally:
        database.unlink(missing_ok=True)
        away.rename(database)


async def test_database_outage_closes_4503_not_anonymous(
    fault_server: LiveServer, fault_users: LiveUsers, fault_dir: Path
) -> None:
    with database_moved_away(fault_dir) as database:
        outcome = await greeting_or_close(
            fault_server.url("/ws/echo/"), token_for(fault_users.active), address="127.0.0.1"
        )
        # The lookup really reached SQLite, which made an empty database in the old place.
        assert database.stat().st_size == 0

    assert outcome == closed_with(fault_server, 4503, "auth_unavailable")


async def test_database_outage_is_logged_as_a_lookup_failure_without_the_token(
    fault_server: LiveServer, fault_users: LiveUsers, fault_dir: Path
) -> None:
    path = tagged("echo")
    token = token_for(fault_users.active)
    with database_moved_away(fault_dir):
        await greeting_or_close(fault_server.url(path), token, address="127.0.0.1")
        log = await log_containing(
            fault_server.log, f"code=4503 source=subprotocol path={path} ", name=fault_server.name
        )

    assert "user lookup failed (OperationalError)" in log
    assert token not in log


async def test_server_recovers_once_the_database_is_back(
    fault_server: LiveServer, fault_users: LiveUsers, fault_dir: Path
) -> None:
    with database_moved_away(fault_dir):
        during = await greeting_or_close(
            fault_server.url("/ws/echo/"), token_for(fault_users.active), address="127.0.0.1"
        )
    after = await greeting_or_close(
        fault_server.url("/ws/echo/"), token_for(fault_users.active), address="127.0.0.1"
    )

    assert during == closed_with(fault_server, 4503, "auth_unavailable")
    assert after == {"user": fault_users.active}


# A resolver that hangs.


async def test_hanging_resolver_closes_4503_within_the_routes_timeout(
    fault_server: LiveServer, fault_users: LiveUsers
) -> None:
    started = time.monotonic()
    outcome = await greeting_or_close(
        fault_server.url("/ws/hang/"), token_for(fault_users.active), address="127.0.0.1"
    )
    elapsed = time.monotonic() - started

    assert outcome == closed_with(fault_server, 4503, "auth_unavailable")
    assert HANG_TIMEOUT <= elapsed < HANG_TIMEOUT + MARGIN


async def test_good_connection_right_after_a_hang_is_served(
    fault_server: LiveServer, fault_users: LiveUsers
) -> None:
    await greeting_or_close(
        fault_server.url("/ws/hang/"), token_for(fault_users.active), address="127.0.0.1"
    )

    outcome = await greeting_or_close(
        fault_server.url("/ws/echo/"), token_for(fault_users.active), address="127.0.0.1"
    )

    assert outcome == {"user": fault_users.active}


async def test_good_connection_is_served_while_another_hangs(
    fault_server: LiveServer, fault_users: LiveUsers
) -> None:
    hanging = asyncio.create_task(
        greeting_or_close(
            fault_server.url("/ws/hang/"), token_for(fault_users.active), address="127.0.0.1"
        )
    )
    outcome = await greeting_or_close(
        fault_server.url("/ws/echo/"), token_for(fault_users.active), address="127.0.0.1"
    )
    still_hanging = not hanging.done()

    assert outcome == {"user": fault_users.active}
    assert still_hanging
    assert await hanging == closed_with(fault_server, 4503, "auth_unavailable")


# The rate limit.


async def test_good_token_after_too_many_failures_is_refused_4429(
    fault_server: LiveServer, fault_users: LiveUsers
) -> None:
    address = own_address()
    failures = [
        await greeting_or_close(fault_server.url("/ws/limited/"), "not-a-jwt", address=address)
        for _ in range(RATE_COUNT)
    ]

    outcome = await greeting_or_close(
        fault_server.url("/ws/limited/"), token_for(fault_users.active), address=address
    )

    assert failures == [closed_with(fault_server, 4400, "token_malformed")] * RATE_COUNT
    assert outcome == closed_with(fault_server, 4429, "rate_limited")


async def test_other_addresses_are_not_limited(
    fault_server: LiveServer, fault_users: LiveUsers
) -> None:
    limited, other = own_address(), own_address()
    for _ in range(RATE_COUNT):
        await greeting_or_close(fault_server.url("/ws/limited/"), "not-a-jwt", address=limited)

    outcome = await greeting_or_close(
        fault_server.url("/ws/limited/"), token_for(fault_users.active), address=other
    )

    assert outcome == {"user": fault_users.active}


async def test_rate_limited_line_names_the_address_and_not_the_token(
    fault_server: LiveServer, fault_users: LiveUsers
) -> None:
    address, path = own_address(), tagged("limited")
    for _ in range(RATE_COUNT):
        await greeting_or_close(fault_server.url(path), "not-a-jwt", address=address)
    token = token_for(fault_users.active)

    await greeting_or_close(fault_server.url(path), token, address=address)

    log = await log_containing(
        fault_server.log,
        f"code=4429 source=- path={path} client={address}:",
        name=fault_server.name,
    )
    assert token not in log


async def test_deny_route_refuses_a_limited_address_with_http(
    fault_server: LiveServer, fault_users: LiveUsers
) -> None:
    address = own_address()
    failures = [
        (await upgrade_status(fault_server, "/ws/limited-deny/", "not-a-jwt", address))[0]
        for _ in range(RATE_COUNT)
    ]

    refusal = await upgrade_status(
        fault_server, "/ws/limited-deny/", token_for(fault_users.active), address
    )

    # Without the denial-response extension, every refusal is a close before accept: 403.
    if BEHAVIOUR[fault_server.name].denial_response:
        assert failures == [401] * RATE_COUNT
        assert refusal == (429, {"code": 4429, "reason": "rate_limited"})
    else:
        assert failures == [403] * RATE_COUNT
        assert refusal == (403, None)
