"""The ``"message"`` source on every ASGI server: the token in graphql-ws' ``connection_init``.

``/ws/message/`` lists ``"message"`` with ``MESSAGE_FORMAT="graphql-ws"`` and a one-second
``MESSAGE_TIMEOUT_SECONDS``. The middleware accepts the upgrade itself (naming the client's
``graphql-transport-ws`` offer), reads the first frame, and only then runs the consumer.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial

import pytest
from websockets.exceptions import ConnectionClosed

from tests import harness
from tests.live.conftest import LiveServer, LiveUsers
from tests.live.server_settings import SIGNING_KEY
from tests.live.servers import BEHAVIOUR
from tests.live.test_live import TIMEOUT, handed_over, open_connection, receive_json

token_for = partial(harness.token_for, key=SIGNING_KEY)

pytestmark = pytest.mark.live

PATH = "/ws/message/"
GRAPHQL = ["graphql-transport-ws"]


def connection_init(token: str) -> str:
    return json.dumps(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}", "v": 1}}
    )


async def test_connection_init_authenticates_and_the_token_reaches_nobody(
    asgi_server: LiveServer, live_users: LiveUsers
) -> None:
    token = token_for(live_users.active)

    async with open_connection(asgi_server, PATH, GRAPHQL) as ws:
        selected = ws.subprotocol
        await ws.send(connection_init(token))
        frame = await receive_json(ws)

    assert selected == "graphql-transport-ws"
    assert handed_over(frame) == {
        "user": {"pk": live_users.active, "username": "carol-live"},
        "source": "message",
        "subprotocols": ["graphql-transport-ws"],
        "query_string": "",
        "protocol_headers": ["graphql-transport-ws"],
    }
    assert token not in frame["scope_text"]


@pytest.mark.parametrize(
    ("first", "code", "reason"),
    [
        (None, 4408, "auth_timeout"),
        (json.dumps({"type": "connection_init", "payload": {}}), 4401, "token_missing"),
        (connection_init("not-a-token"), 4400, "token_malformed"),
    ],
    ids=["no-frame", "no-token", "bad-token"],
)
async def test_a_missing_or_bad_first_frame_closes_the_open_socket_with_its_code(
    asgi_server: LiveServer, first: str | None, code: int, reason: str
) -> None:
    async with open_connection(asgi_server, PATH, GRAPHQL) as ws:
        if first is not None:
            await ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)

    frame = closed.value.rcvd
    assert frame is not None, "no close frame received"
    expected = reason if BEHAVIOUR[asgi_server.name].passes_close_reasons else ""
    assert (frame.code, frame.reason) == (code, expected)
