"""Open sockets on real servers: the expiry close and in-band refresh, on every server.

The servers run ``tests.live.asgi_app_guard`` (a ``TokenRefreshMixin`` consumer) with the
live settings and database of ``tests/live/conftest.py``. Each expiry is measured from the
token's ``exp`` to the moment the client sees the close frame, and printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tests import harness
from tests.harness import MARKER
from tests.live.conftest import REPO_ROOT, LiveServer, LiveUsers, running_server, server_environment
from tests.live.server_settings import SIGNING_KEY
from tests.live.servers import SERVERS

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)

pytestmark = pytest.mark.live

APPLICATION = "tests.live.asgi_app_guard:application"
PATH = "/ws/guard/"
#: Seconds any single client step (handshake, frame) may take.
TIMEOUT = 5.0
#: How long after ``exp`` the client may see the expiry close (the issue's bound).
MAX_EXPIRY_DELAY = 1.5
#: How early it may see it (the server's loop clock and the wall clock are read separately).
EARLINESS = 0.05
#: The lead an ``exp`` keeps over the handshake (a live handshake takes milliseconds).
LEAD = 1.0

_CREATE_USER = """
import django
django.setup()
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username="erin-live")
print(user.pk)
"""


@pytest.fixture(scope="module", params=SERVERS)
def guard_server(
    request: pytest.FixtureRequest, live_dir: Path, live_users: LiveUsers
) -> Iterator[LiveServer]:
    """Each server of ``SERVERS`` serving ``tests.live.asgi_app_guard``, once per module."""
    with running_server(request.param, live_dir, APPLICATION) as server:
        yield server


@pytest.fixture(scope="module")
def other_user(live_dir: Path, live_users: LiveUsers) -> int:
    """The primary key of a second active user in the live database."""
    completed = subprocess.run(
        [sys.executable, "-c", _CREATE_USER],
        cwd=REPO_ROOT,
        env=server_environment(live_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"creating the second live user failed:\n{completed.stderr}")
    return int(completed.stdout.strip().splitlines()[-1])


def exp_after(lead: float = LEAD) -> int:
    """An integer ``exp`` between ``lead`` and ``lead + 1`` seconds from now."""
    return math.ceil(time.time() + lead)


def open_socket(server: LiveServer, token: str) -> connect:
    """Connect to the guard route with ``token`` in the subprotocol, with timeouts."""
    return connect(
        server.url(PATH),
        subprotocols=[MARKER, token],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


async def receive_json(ws: ClientConnection) -> Any:
    """The next frame, parsed as JSON."""
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def wait_for_close(ws: ClientConnection, deadline: float) -> tuple[Close, float]:
    """Wait (until ``deadline`` + TIMEOUT) for the server's close: the frame and when it came."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), max(0.0, deadline - time.time()) + TIMEOUT)
    closed_at = time.time()
    assert closed.value.rcvd is not None, "no close frame received"
    return closed.value.rcvd, closed_at


def report_delay(server: LiveServer, what: str, delay: float) -> None:
    print(f"\n{server.name}: {what} closed {delay:+.3f}s after exp")


async def test_expired_token_closes_the_open_socket_with_4440_within_1_5_s(
    guard_server: LiveServer, live_users: LiveUsers
) -> None:
    exp = exp_after()
    async with open_socket(guard_server, token_for(live_users.active, exp=exp)) as ws:
        assert await receive_json(ws) == {"exp": exp}
        close, closed_at = await wait_for_close(ws, exp)

    delay = closed_at - exp
    report_delay(guard_server, "idle socket", delay)
    assert close.code == 4440
    assert -EARLINESS <= delay <= MAX_EXPIRY_DELAY


async def test_refresh_frame_extends_the_socket_to_the_new_exp(
    guard_server: LiveServer, live_users: LiveUsers
) -> None:
    old_exp = exp_after()
    new_exp = old_exp + 1
    async with open_socket(guard_server, token_for(live_users.active, exp=old_exp)) as ws:
        await receive_json(ws)
        await ws.send(
            json.dumps(
                {"type": "token.refresh", "token": token_for(live_users.active, exp=new_exp)}
            )
        )
        refreshed = await receive_json(ws)
        await asyncio.sleep(max(0.0, old_exp + 0.3 - time.time()))
        await ws.send(json.dumps({"type": "ping"}))
        echo_after_old_exp = await receive_json(ws)
        close, closed_at = await wait_for_close(ws, new_exp)

    delay = closed_at - new_exp
    report_delay(guard_server, "refreshed socket", delay)
    assert refreshed == {"type": "token.refreshed", "expires_at": new_exp}
    assert echo_after_old_exp == {"echo": {"type": "ping"}}
    assert close.code == 4440
    assert -EARLINESS <= delay <= MAX_EXPIRY_DELAY


async def test_refresh_with_another_users_token_closes_with_4401(
    guard_server: LiveServer, live_users: LiveUsers, other_user: int
) -> None:
    async with open_socket(guard_server, token_for(live_users.active)) as ws:
        await receive_json(ws)
        await ws.send(json.dumps({"type": "token.refresh", "token": token_for(other_user)}))
        close, _ = await wait_for_close(ws, time.time())

    assert close.code == 4401
