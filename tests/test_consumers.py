"""``TokenRefreshMixin`` (``channels_jwt.consumers``): in-band refresh for JSON consumers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator

from channels_jwt import (
    JWTAuthMiddleware,
    TokenExpired,
)
from channels_jwt.connection import JWTConnection
from channels_jwt.consumers import TokenRefreshMixin
from tests.harness import (
    MARKER,
    PATH,
    TIMEOUT,
    Configure,
    expired_token_for,
    picky_revocation_check,
    soon,
    token_for,
)


class RefreshConsumer(TokenRefreshMixin, AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accepts; echoes every JSON frame the mixin passes on; undecodable text is echoed too."""

    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return {"undecodable": text_data}


# TokenRefreshMixin.


async def open_consumer(token: str | None = None) -> WebsocketCommunicator:
    offered = [MARKER, token] if token is not None else []
    communicator = WebsocketCommunicator(
        JWTAuthMiddleware(RefreshConsumer.as_asgi()), PATH, subprotocols=offered
    )
    connected, _ = await communicator.connect(TIMEOUT)
    assert connected
    return communicator


@pytest.fixture
async def consumers(db: None) -> AsyncIterator[list[WebsocketCommunicator]]:
    """Consumer communicators opened by a test, disconnected afterwards.

    channels' consumers close stale database connections when they stop, hence ``db``.
    """
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        await communicator.disconnect(timeout=TIMEOUT)


async def test_mixin_answers_a_refresh_with_the_new_exp(
    configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    consumers.append(communicator := await open_consumer(token_for(1, exp=soon(60))))
    new_exp = soon(120)

    await communicator.send_json_to({"type": "token.refresh", "token": token_for(1, exp=new_exp)})

    assert await communicator.receive_json_from(TIMEOUT) == {
        "type": "token.refreshed",
        "expires_at": new_exp,
    }


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"type": "chat", "text": "hi"}', id="other-type"),
        pytest.param('{"type": "chat", "text": "token.refresh"}', id="mentions-refresh"),
        pytest.param('["token.refresh"]', id="not-an-object"),
        pytest.param('{"type": "token.refresh", ', id="bad-json"),
    ],
)
async def test_mixin_passes_other_frames_to_receive_json(
    text: str, configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    consumers.append(communicator := await open_consumer(token_for(1)))
    expected = await RefreshConsumer.decode_json(text)

    await communicator.send_to(text_data=text)

    assert await communicator.receive_json_from(TIMEOUT) == {"echo": expected}


REFUSED_REFRESH_CODES = [
    pytest.param(expired_token_for, 4440, id="expired-4440"),
    pytest.param(lambda: token_for(2), 4401, id="other-user-4401"),
    pytest.param(lambda: "not-a-jwt", 4400, id="garbage-4400"),
    pytest.param(lambda: token_for(1, jti="revoked-2"), 4441, id="revoked-4441"),
    pytest.param(lambda: token_for(1, jti="crash-2"), 4503, id="check-crashes-4503"),
]


@pytest.mark.parametrize(("make_token", "code"), REFUSED_REFRESH_CODES)
async def test_mixin_closes_with_the_refusals_code(
    make_token: Callable[[], str],
    code: int,
    configure: Configure,
    consumers: list[WebsocketCommunicator],
) -> None:
    configure(REVOCATION_CHECK=picky_revocation_check)
    consumers.append(communicator := await open_consumer(token_for(1)))

    await communicator.send_json_to({"type": "token.refresh", "token": make_token()})

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": code}


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param({"type": "token.refresh", "token": 5}, id="number"),
        pytest.param({"type": "token.refresh", "token": [token_for(1)]}, id="list"),
        pytest.param({"type": "token.refresh"}, id="missing"),
    ],
)
async def test_mixin_closes_4400_for_a_token_that_is_not_a_string(
    frame: dict[str, Any], configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    consumers.append(communicator := await open_consumer(token_for(1)))

    await communicator.send_json_to(frame)

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4400}


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        pytest.param(expired_token_for, "token_expired", id="expired"),
        pytest.param(lambda: 5, "token_malformed", id="not-a-string"),
    ],
)
async def test_mixin_applies_close_codes_overrides(
    make_token: Callable[[], Any],
    reason: str,
    configure: Configure,
    consumers: list[WebsocketCommunicator],
) -> None:
    configure(CLOSE_CODES={reason: 4001})
    consumers.append(communicator := await open_consumer(token_for(1)))

    await communicator.send_json_to({"type": "token.refresh", "token": make_token()})

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4001}


def test_close_code_for_an_unguarded_connection_is_the_default() -> None:
    connection = JWTConnection({"exp": 1}, "query")

    assert connection.close_code_for(TokenExpired()) == 4440


async def test_mixin_closes_4400_on_an_anonymous_connection(
    configure: Configure, consumers: list[WebsocketCommunicator]
) -> None:
    configure(ALLOW_ANONYMOUS=True)
    consumers.append(communicator := await open_consumer(None))

    await communicator.send_json_to({"type": "token.refresh", "token": token_for(1)})

    assert await communicator.receive_output(TIMEOUT) == {"type": "websocket.close", "code": 4400}
