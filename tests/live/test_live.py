"""What real clients see from real servers: uvicorn and daphne, driven by ``websockets``.

Each test runs against both servers (the ``asgi_server`` fixture is parametrized). Where the
servers differ, :data:`BEHAVIOUR` records what each one does, and the tests assert exactly
that, so a change on either side shows up here.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close

from tests.conftest import claims_for, hs_token
from tests.live.conftest import LiveServer, LiveUsers
from tests.live.server_settings import SIGNING_KEY

pytestmark = pytest.mark.live

#: Seconds any single client step (handshake, frame, close, log line) may take.
TIMEOUT = 5.0
MARKER = "access_token"


@dataclass(frozen=True)
class ServerBehaviour:
    """How one server treats what the middleware sends it."""

    #: Whether close reasons reach the client (daphne sends the code alone).
    passes_close_reasons: bool
    #: The HTTP status of a ``REJECT_MODE="deny"`` refusal of an expired token.
    deny_status: int
    #: The ``WWW-Authenticate`` header of that refusal (``None``: absent).
    deny_challenge: str | None
    #: Its JSON body (``None``: no JSON body).
    deny_body: dict[str, Any] | None
    #: Whether the server logs the request's query string (and so a ``?token=``).
    logs_query_string: bool


BEHAVIOUR = {
    # uvicorn has the ASGI denial-response extension and logs "WebSocket /path?query".
    "uvicorn": ServerBehaviour(
        passes_close_reasons=True,
        deny_status=401,
        deny_challenge='Bearer error="invalid_token"',
        deny_body={"code": 4440, "reason": "token_expired"},
        logs_query_string=True,
    ),
    # daphne drops close reasons, turns a close before accept into HTTP 403, and its access
    # log shows the path only.
    "daphne": ServerBehaviour(
        passes_close_reasons=False,
        deny_status=403,
        deny_challenge=None,
        deny_body=None,
        logs_query_string=False,
    ),
}


def token_for(user_id: int, **overrides: Any) -> str:
    """An HS256 access token for ``user_id``, signed with the live servers' key."""
    return hs_token(claims_for(user_id, **overrides), key=SIGNING_KEY)


def expired_token_for(user_id: int) -> str:
    """An access token for ``user_id`` whose ``exp`` passed a minute ago."""
    now = int(time.time())
    return token_for(user_id, iat=now - 360, exp=now - 60)


def tagged(route: str) -> str:
    """A path under ``route`` that no other connection uses, to find this one in the log."""
    return f"/ws/{route}/{uuid.uuid4().hex}/"


def open_connection(
    server: LiveServer, path: str, subprotocols: list[str] | None = None
) -> connect:
    """``websockets`` ``connect`` with timeouts, so a misbehaving server cannot hang a test."""
    return connect(
        server.url(path),
        # ``[]`` would send an empty Sec-WebSocket-Protocol header: offer none at all.
        subprotocols=subprotocols or None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


async def receive_json(ws: ClientConnection) -> Any:
    """The next frame, parsed as JSON."""
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def closed_after_upgrade(
    server: LiveServer, path: str, subprotocols: list[str] | None = None
) -> tuple[int, str | None, Close]:
    """Complete the upgrade, then wait for the server's close: status, subprotocol, frame."""
    async with open_connection(server, path, subprotocols) as ws:
        status = ws.response.status_code
        selected = ws.subprotocol
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None, "no close frame received"
    return status, selected, closed.value.rcvd


async def refused_upgrade(server: LiveServer, path: str, subprotocols: list[str]) -> InvalidStatus:
    """The ``InvalidStatus`` raised when the server refuses the upgrade with HTTP."""
    with pytest.raises(InvalidStatus) as refused:
        async with open_connection(server, path, subprotocols):
            pass
    return refused.value


async def log_containing(server: LiveServer, fragment: str) -> str:
    """The server's log once ``fragment`` has appeared in it."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        log = server.log()
        if fragment in log:
            return log
        if time.monotonic() > deadline:
            pytest.fail(f"{fragment!r} never appeared in the {server.name} log:\n{log}")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("offered_before", "app_sees"),
    [([], []), (["chat.v1"], ["chat.v1"])],
    ids=["marker-only", "after-app-protocol"],
)
async def test_subprotocol_token_selects_marker_and_reaches_app_without_token(
    asgi_server: LiveServer,
    live_users: LiveUsers,
    offered_before: list[str],
    app_sees: list[str],
) -> None:
    token = token_for(live_users.active)

    async with open_connection(asgi_server, "/ws/echo/", [*offered_before, MARKER, token]) as ws:
        selected = ws.subprotocol
        frame = await receive_json(ws)

    assert selected == MARKER
    assert frame == {
        "user": {"pk": live_users.active, "username": "carol-live"},
        "source": "subprotocol",
        "subprotocols": app_sees,
        "query_string": "",
        "protocol_headers": [", ".join(app_sees)] if app_sees else [],
    }


async def test_query_token_accepted_and_removed_from_query_string(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    token = token_for(live_users.active)

    async with open_connection(asgi_server, f"/ws/echo/?room=7&token={token}") as ws:
        selected = ws.subprotocol
        frame = await receive_json(ws)

    assert selected is None
    assert frame == {
        "user": {"pk": live_users.active, "username": "carol-live"},
        "source": "query",
        "subprotocols": [],
        "query_string": "room=7",
        "protocol_headers": [],
    }


REJECTIONS = [
    pytest.param("expired", 4440, "token_expired", id="expired-4440"),
    pytest.param("garbage", 4400, "token_malformed", id="garbage-4400"),
    pytest.param("missing", 4401, "token_missing", id="missing-4401"),
    pytest.param("inactive-user", 4403, "user_rejected", id="inactive-user-4403"),
]


def offered_for(case: str, users: LiveUsers) -> list[str]:
    """The subprotocols a client offers in rejection ``case``."""
    if case == "expired":
        return [MARKER, expired_token_for(users.active)]
    if case == "garbage":
        return [MARKER, "not-a-jwt"]
    if case == "inactive-user":
        return [MARKER, token_for(users.inactive)]
    return []


@pytest.mark.parametrize(("case", "code", "reason"), REJECTIONS)
async def test_rejection_completes_upgrade_then_closes_with_code(
    asgi_server: LiveServer, live_users: LiveUsers, case: str, code: int, reason: str
) -> None:
    offered = offered_for(case, live_users)

    status, selected, close = await closed_after_upgrade(asgi_server, "/ws/echo/", offered)

    assert status == 101
    assert selected == (MARKER if offered else None)
    assert close.code == code


@pytest.mark.parametrize(("case", "code", "reason"), REJECTIONS)
async def test_rejection_close_reason_reaches_client_only_where_server_passes_it(
    asgi_server: LiveServer, live_users: LiveUsers, case: str, code: int, reason: str
) -> None:
    offered = offered_for(case, live_users)

    _, _, close = await closed_after_upgrade(asgi_server, "/ws/echo/", offered)

    expected = reason if BEHAVIOUR[asgi_server.name].passes_close_reasons else ""
    assert (close.code, close.reason) == (code, expected)


async def test_deny_route_accepts_valid_token(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    async with open_connection(
        asgi_server, "/ws/deny/", [MARKER, token_for(live_users.active)]
    ) as ws:
        selected = ws.subprotocol
        frame = await receive_json(ws)

    assert selected == MARKER
    assert frame["user"] == {"pk": live_users.active, "username": "carol-live"}


async def test_deny_route_refuses_expired_token_with_http_status(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    refused = await refused_upgrade(
        asgi_server, "/ws/deny/", [MARKER, expired_token_for(live_users.active)]
    )

    assert refused.response.status_code == BEHAVIOUR[asgi_server.name].deny_status


async def test_deny_route_challenge_header(asgi_server: LiveServer, live_users: LiveUsers) -> None:
    refused = await refused_upgrade(
        asgi_server, "/ws/deny/", [MARKER, expired_token_for(live_users.active)]
    )

    challenge = refused.response.headers.get("WWW-Authenticate")
    assert challenge == BEHAVIOUR[asgi_server.name].deny_challenge


async def test_deny_route_json_body(asgi_server: LiveServer, live_users: LiveUsers) -> None:
    refused = await refused_upgrade(
        asgi_server, "/ws/deny/", [MARKER, expired_token_for(live_users.active)]
    )

    response = refused.response
    is_json = response.headers.get("Content-Type") == "application/json"
    body = json.loads(response.body) if is_json else None
    assert body == BEHAVIOUR[asgi_server.name].deny_body


@pytest.mark.parametrize("expired", [False, True], ids=["valid", "expired"])
async def test_subprotocol_token_never_in_server_log(
    asgi_server: LiveServer, live_users: LiveUsers, expired: bool
) -> None:
    path = tagged("echo")
    if expired:
        token = expired_token_for(live_users.active)
        await closed_after_upgrade(asgi_server, path, [MARKER, token])
        # The middleware's rejection line, logged before the server sends its 101.
        log = await log_containing(asgi_server, f"code=4440 source=subprotocol path={path} ")
    else:
        token = token_for(live_users.active)
        async with open_connection(asgi_server, path, [MARKER, token]) as ws:
            await receive_json(ws)
        log = await log_containing(asgi_server, path)

    assert path in log
    assert token not in log


async def test_query_token_in_server_log_only_where_server_logs_query_strings(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    path = tagged("echo")
    token = token_for(live_users.active)
    async with open_connection(asgi_server, f"{path}?token={token}") as ws:
        await receive_json(ws)

    log = await log_containing(asgi_server, path)

    assert (token in log) is BEHAVIOUR[asgi_server.name].logs_query_string
