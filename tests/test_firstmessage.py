"""The ``"message"`` source (``channels_jwt.firstmessage``): the token in the first frame.

Driven through ``JWTAuthMiddleware`` in-process: the middleware accepts, waits for the first
frame, reads the token by ``MESSAGE_FORMAT``, and only then runs the application, which gets
``websocket.connect`` (and, for ``graphql-ws``, ``connection_init`` without the token).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from channels_jwt import JWTAuthMiddleware, adisconnect_user
from channels_jwt.firstmessage import MAX_FIRST_MESSAGE_BYTES, graphql_ws_format, json_format
from channels_jwt.signals import authenticated
from channels_jwt.testing import JWTWebsocketCommunicator
from tests.harness import (
    LOGGER,
    MARKER,
    TIMEOUT,
    Configure,
    close_message,
    expired_token_for,
    soon,
    token_for,
    websocket_scope,
)

JSON = "json"
GRAPHQL = "graphql-ws"
MESSAGE_ONLY = {"TOKEN_SOURCES": ["subprotocol", "message"], "MESSAGE_TIMEOUT_SECONDS": 1}


@dataclass
class ListeningApp:
    """Records its scope and every message it receives; accepts, then echoes frames."""

    scopes: list[dict[str, Any]] = field(default_factory=list)
    received: list[Mapping[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        connect = await receive()
        self.received.append(connect)
        await send({"type": "websocket.accept", "subprotocol": "from-the-app"})
        while (message := await receive())["type"] != "websocket.disconnect":
            self.received.append(message)
            await send({"type": "websocket.send", "text": f"echo {message.get('text')}"})


def authenticate(token: str) -> str:
    return json.dumps({"type": "authenticate", "token": token})


def connection_init(**payload: Any) -> str:
    return json.dumps({"type": "connection_init", "payload": payload})


async def opened(
    app: Any, first: str | None, subprotocols: list[str] | None = None
) -> tuple[ApplicationCommunicator, Mapping[str, Any]]:
    """Connect offering no credential, then send ``first``: the communicator and the accept."""
    communicator = ApplicationCommunicator(
        JWTAuthMiddleware(app), websocket_scope(subprotocols=subprotocols or [])
    )
    await communicator.send_input({"type": "websocket.connect"})
    accept = await communicator.receive_output(TIMEOUT)
    if first is not None:
        await communicator.send_input({"type": "websocket.receive", "text": first})
    return communicator, accept


async def closed(communicator: ApplicationCommunicator) -> Any:
    message = await communicator.receive_output(TIMEOUT)
    await communicator.wait(TIMEOUT)
    return message


async def hang_up(communicator: ApplicationCommunicator) -> None:
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(TIMEOUT)


# -- the formats, as functions -------------------------------------------------------------------


def frame(text: str) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": text}


def test_json_reads_the_authenticate_message_and_consumes_it() -> None:
    assert json_format(frame(authenticate("a.b.c"))) == ("a.b.c", None)


@pytest.mark.parametrize(
    "text", ['{"type": "hello"}', "not json", "[1, 2]", '{"token": "a.b.c"}', ""]
)
def test_json_passes_on_any_other_first_message(text: str) -> None:
    assert json_format(frame(text)) == (None, frame(text))


def test_json_refuses_a_token_that_is_not_a_string() -> None:
    with pytest.raises(Exception, match="not a string") as refused:
        json_format(frame(json.dumps({"type": "authenticate", "token": 7})))
    assert refused.value.reason == "token_malformed"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "bearer  a.b.c "},
        {"Authorization": "a.b.c"},
        {"authorization": "Bearer a.b.c"},
        {"authToken": "a.b.c"},
        {"token": "a.b.c"},
        {"access_token": "a.b.c"},
        {"headers": {"Authorization": "Bearer a.b.c"}},
        {"Authorization": "Bearer a.b.c", "token": "a.b.c"},  # one token, twice
    ],
)
def test_graphql_ws_reads_every_place_clients_put_the_token(payload: dict[str, Any]) -> None:
    token, forwarded = graphql_ws_format(frame(connection_init(**payload, locale="fr")))

    assert token == "a.b.c"
    assert forwarded is not None
    passed_on = json.loads(forwarded["text"])
    assert passed_on["type"] == "connection_init"
    assert "a.b.c" not in forwarded["text"]
    assert passed_on["payload"]["locale"] == "fr"  # every other key kept


@pytest.mark.parametrize(
    "payload",
    [{"token": "a.b.c", "authToken": "d.e.f"}, {"token": 7}, {"headers": {"Authorization": []}}],
)
def test_graphql_ws_refuses_two_tokens_or_one_that_is_not_a_string(
    payload: dict[str, Any],
) -> None:
    with pytest.raises(Exception, match="connection_init") as refused:
        graphql_ws_format(frame(connection_init(**payload)))
    assert refused.value.reason == "token_malformed"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"type": "connection_init"}),
        json.dumps({"type": "connection_init", "payload": None}),
        json.dumps({"type": "subscribe", "payload": {"token": "a.b.c"}}),
        "not json",
    ],
)
def test_graphql_ws_finds_no_token_elsewhere(text: str) -> None:
    assert graphql_ws_format(frame(text)) == (None, frame(text))


# -- through the middleware ----------------------------------------------------------------------


@pytest.fixture
def message_source(configure: Configure) -> Configure:
    configure(**MESSAGE_ONLY)
    return configure


async def test_the_first_message_authenticates_and_is_consumed(message_source: Configure) -> None:
    app = ListeningApp()
    communicator, accept = await opened(app, authenticate(token_for(7)))

    await communicator.send_input({"type": "websocket.receive", "text": "hello"})

    assert accept == {"type": "websocket.accept", "subprotocol": None}
    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.send",
        "text": "echo hello",
    }
    assert app.received == [{"type": "websocket.connect"}, frame("hello")]
    assert app.scopes[0]["user"].pk == 7
    assert app.scopes[0]["jwt"].source == "message"
    await hang_up(communicator)


async def test_graphql_ws_hands_connection_init_on_without_the_token(
    message_source: Configure,
) -> None:
    message_source(**MESSAGE_ONLY, MESSAGE_FORMAT=GRAPHQL)
    app = ListeningApp()
    token = token_for(7)
    offered = ["graphql-ws", "graphql-transport-ws"]

    communicator, accept = await opened(
        app, connection_init(Authorization=f"Bearer {token}", locale="fr"), offered
    )

    assert accept == {"type": "websocket.accept", "subprotocol": "graphql-ws"}
    echo = await communicator.receive_output(TIMEOUT)
    assert app.received[0] == {"type": "websocket.connect"}
    assert json.loads(app.received[1]["text"]) == {
        "type": "connection_init",
        "payload": {"locale": "fr"},
    }
    assert token not in json.dumps(echo)
    assert app.scopes[0]["jwt"].source == "message"
    await hang_up(communicator)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["graphql-transport-ws"], "graphql-transport-ws"), (["chat", "graphql-ws"], "graphql-ws")],
)
async def test_the_accept_names_the_first_offer_among_message_subprotocols(
    message_source: Configure, offered: list[str], chosen: str
) -> None:
    communicator, accept = await opened(ListeningApp(), None, offered)

    assert accept["subprotocol"] == chosen
    await hang_up(communicator)


async def test_no_first_message_in_time_is_4408(
    message_source: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    message_source(**{**MESSAGE_ONLY, "MESSAGE_TIMEOUT_SECONDS": 0.2})
    app = ListeningApp()
    communicator, _ = await opened(app, None)

    assert await closed(communicator) == close_message(4408, "auth_timeout")
    assert not app.scopes
    assert any("auth_timeout" in line for line in caplog.messages)


@pytest.mark.parametrize("fmt", [JSON, GRAPHQL])
async def test_a_first_message_without_a_token_is_4401(message_source: Configure, fmt: str) -> None:
    message_source(**MESSAGE_ONLY, MESSAGE_FORMAT=fmt)
    app = ListeningApp()
    communicator, _ = await opened(app, json.dumps({"type": "connection_init", "payload": {}}))

    assert await closed(communicator) == close_message(4401, "token_missing")
    assert not app.scopes


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (lambda: authenticate("not-a-token"), close_message(4400, "token_malformed")),
        (lambda: authenticate(token_for(1, key="another-key-" * 4)), None),
        (lambda: authenticate(expired_token_for(1)), close_message(4440, "token_expired")),
        (lambda: "x" * (MAX_FIRST_MESSAGE_BYTES + 1), close_message(4400, "token_malformed")),
        (lambda: authenticate("e" * 9000), close_message(4400, "token_malformed")),
    ],
    ids=["malformed", "bad-signature", "expired", "frame-too-large", "token-too-large"],
)
async def test_a_bad_first_message_closes_the_open_socket_with_its_code(
    message_source: Configure, first: Any, expected: Any
) -> None:
    app = ListeningApp()
    communicator, accept = await opened(app, first())

    close = await closed(communicator)

    assert accept["type"] == "websocket.accept"  # the one accept: the rest is a close
    assert close["type"] == "websocket.close"
    assert close == (expected or close_message(4401, "token_invalid"))
    assert not app.scopes


async def test_a_binary_first_frame_holds_no_token(message_source: Configure) -> None:
    app = ListeningApp()
    communicator = ApplicationCommunicator(JWTAuthMiddleware(app), websocket_scope())
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.receive_output(TIMEOUT)

    await communicator.send_input({"type": "websocket.receive", "bytes": b'{"type": "x"}'})

    assert await closed(communicator) == close_message(4401, "token_missing")


async def test_a_token_that_is_not_a_string_is_4400(message_source: Configure) -> None:
    communicator, _ = await opened(ListeningApp(), json.dumps({"type": "authenticate", "token": 7}))

    assert await closed(communicator) == close_message(4400, "token_malformed")


async def test_a_client_gone_before_its_connect_runs_nothing(message_source: Configure) -> None:
    app = ListeningApp()
    communicator = ApplicationCommunicator(JWTAuthMiddleware(app), websocket_scope())

    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(TIMEOUT)

    assert not app.scopes
    assert await communicator.receive_nothing(0.05)


async def test_a_client_that_leaves_before_authenticating_runs_nothing(
    message_source: Configure,
) -> None:
    app = ListeningApp()
    communicator, _ = await opened(app, None)

    await communicator.send_input({"type": "websocket.disconnect", "code": 1001})
    await communicator.wait(TIMEOUT)

    assert not app.scopes
    assert await communicator.receive_nothing(0.05)


async def test_a_credential_in_the_handshake_is_used_and_no_message_is_awaited(
    message_source: Configure,
) -> None:
    app = ListeningApp()
    communicator = ApplicationCommunicator(
        JWTAuthMiddleware(app), websocket_scope(subprotocols=[MARKER, token_for(3)])
    )
    await communicator.send_input({"type": "websocket.connect"})

    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.accept",
        "subprotocol": "from-the-app",
    }
    assert app.scopes[0]["jwt"].source == "subprotocol"
    await hang_up(communicator)


async def test_anonymous_connections_get_their_first_message_untouched(
    message_source: Configure,
) -> None:
    message_source(**MESSAGE_ONLY, ALLOW_ANONYMOUS=True)
    app = ListeningApp()
    communicator, _ = await opened(app, '{"type": "hello"}')

    await communicator.receive_output(TIMEOUT)

    assert app.received == [{"type": "websocket.connect"}, frame('{"type": "hello"}')]
    assert not app.scopes[0]["user"].is_authenticated
    await hang_up(communicator)


def failing_format(message: Any) -> Any:
    raise ValueError(f"cannot read {message['text']}")


def own_format(message: Any) -> Any:
    return message["text"].removeprefix("TOKEN "), None


async def test_a_callable_format_reads_the_first_message(message_source: Configure) -> None:
    message_source(**MESSAGE_ONLY, MESSAGE_FORMAT="tests.test_firstmessage.own_format")
    app = ListeningApp()
    communicator, _ = await opened(app, f"TOKEN {token_for(5)}")
    await communicator.send_input({"type": "websocket.receive", "text": "next"})
    await communicator.receive_output(TIMEOUT)

    assert app.scopes[0]["user"].pk == 5
    await hang_up(communicator)


async def test_a_callable_format_that_fails_is_4400_and_its_error_is_not_logged(
    message_source: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    message_source(**MESSAGE_ONLY, MESSAGE_FORMAT=failing_format)
    token = token_for(5)
    communicator, _ = await opened(ListeningApp(), token)

    assert await closed(communicator) == close_message(4400, "token_malformed")
    assert token not in caplog.text
    assert "cannot read" not in caplog.text
    assert "MESSAGE_FORMAT could not read it (ValueError)" in caplog.text


# -- the same guard as any other source ----------------------------------------------------------


async def test_the_socket_closes_with_4440_when_the_messages_token_expires(
    message_source: Configure,
) -> None:
    app = ListeningApp()
    communicator, _ = await opened(app, authenticate(token_for(7, exp=soon(0.3))))

    assert await communicator.receive_output(3) == close_message(4440, "token_expired")
    await hang_up(communicator)


async def test_disconnect_user_closes_a_socket_authenticated_by_message(
    message_source: Configure,
) -> None:
    message_source(**MESSAGE_ONLY, LIVE_REVOCATION=True)
    communicator, _ = await opened(ListeningApp(), authenticate(token_for(8)))
    await communicator.send_input({"type": "websocket.receive", "text": "ready?"})
    await communicator.receive_output(TIMEOUT)

    await adisconnect_user(8)

    assert await communicator.receive_output(TIMEOUT) == close_message(4441, "token_revoked")
    await hang_up(communicator)


async def test_failed_first_messages_count_towards_the_rate_limit(
    message_source: Configure,
) -> None:
    message_source(**MESSAGE_ONLY, RATE_LIMIT="2/min")
    closes = []
    for _ in range(3):
        communicator, _ = await opened(ListeningApp(), authenticate("not-a-token"))
        closes.append((await closed(communicator))["code"])

    assert closes == [4400, 4400, 4429]


async def test_authenticated_is_sent_with_the_message_source(message_source: Configure) -> None:
    sources: list[str] = []

    def receiver(sender: Any, source: str, **kwargs: Any) -> None:
        sources.append(source)

    authenticated.connect(receiver)
    try:
        communicator, _ = await opened(ListeningApp(), authenticate(token_for(7)))
        await communicator.send_input({"type": "websocket.receive", "text": "x"})
        await communicator.receive_output(TIMEOUT)
        for _ in range(50):
            if sources:
                break
            await asyncio.sleep(0.02)
    finally:
        authenticated.disconnect(receiver)
    assert sources == ["message"]
    await hang_up(communicator)


# -- channels_jwt.testing ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [JSON, GRAPHQL])
async def test_the_testing_communicator_authenticates_by_message(
    message_source: Configure, fmt: str
) -> None:
    message_source(**MESSAGE_ONLY, MESSAGE_FORMAT=fmt)
    app = ListeningApp()
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(app), "/ws/", token_for(4), transport="message"
    )

    connected, _ = await communicator.connect(timeout=0.2)

    assert connected
    assert app.scopes[0]["user"].pk == 4
    await communicator.disconnect()


async def test_the_testing_communicator_reports_a_refused_message(
    message_source: Configure,
) -> None:
    communicator = JWTWebsocketCommunicator(
        JWTAuthMiddleware(ListeningApp()), "/ws/", "not-a-token", transport="message"
    )

    assert await communicator.connect() == (False, 4400)


async def test_the_testing_communicator_needs_a_format_it_can_write(
    message_source: Configure,
) -> None:
    message_source(**MESSAGE_ONLY, MESSAGE_FORMAT=own_format)

    with pytest.raises(ValueError, match="MESSAGE_FORMAT"):
        JWTWebsocketCommunicator(ListeningApp(), "/ws/", "t", transport="message")


@pytest.mark.parametrize(
    ("message_format", "expected"), [(GRAPHQL, (True, None)), (None, (False, 4401))]
)
async def test_the_testing_communicator_writes_a_routes_own_format(
    message_source: Configure, message_format: str | None, expected: tuple[bool, object]
) -> None:
    message_source(**MESSAGE_ONLY, MESSAGE_FORMAT=JSON)
    route = JWTAuthMiddleware(ListeningApp(), settings={"MESSAGE_FORMAT": GRAPHQL})
    communicator = JWTWebsocketCommunicator(
        route, "/ws/", token_for(4), transport="message", message_format=message_format
    )

    assert await communicator.connect(timeout=0.2) == expected
    await communicator.disconnect()
