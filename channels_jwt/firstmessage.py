"""The ``"message"`` source: the token in the first WebSocket frame (DESIGN.md section 4a).

Browsers cannot set headers, a token in a URL reaches logs, and GraphQL clients (graphql-ws,
behind Apollo, urql and Relay) send theirs in ``connection_init``. When ``"message"`` is in
``TOKEN_SOURCES`` and the handshake carries no credential, the middleware accepts the socket
itself, naming the first subprotocol the client offered among ``MESSAGE_SUBPROTOCOLS``, and
waits ``MESSAGE_TIMEOUT_SECONDS`` for the first frame. ``MESSAGE_FORMAT`` reads the token from
it:

- ``"json"``: ``{"type": "authenticate", "token": "<jwt>"}``, consumed;
- ``"graphql-ws"``: ``connection_init``, whose payload holds the token under
  ``Authorization`` (with or without ``Bearer``), ``authToken``, ``token``, ``access_token``
  or ``headers.Authorization``; the frame is passed on without them, every other key kept;
- a callable: ``(message) -> (token or None, message to pass on or None)``, given the ASGI
  ``websocket.receive`` message.

The application then runs as for any other source: it receives ``websocket.connect`` (its
accept is absorbed: the socket is open already) and, for ``"graphql-ws"``, the
``connection_init`` frame without the token.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from channels_jwt.conf import Config
from channels_jwt.exceptions import AuthenticationFailed, AuthTimeout, TokenMalformed
from channels_jwt.types import Message, Receive, Scope, Send

#: A first frame larger than this is refused before it is parsed (4400).
MAX_FIRST_MESSAGE_BYTES = 65536
#: The ``type`` of the ``"json"`` format's authentication message.
AUTHENTICATE = "authenticate"
#: Where graphql-ws clients put the token in ``connection_init``'s payload.
GRAPHQL_TOKEN_KEYS = ("Authorization", "authorization", "authToken", "token", "access_token")

#: ``(first message) -> (token or None, message to pass on or None)``.
MessageFormat = Callable[[Message], tuple[str | None, Message | None]]


def json_format(message: Message) -> tuple[str | None, Message | None]:
    """``{"type": "authenticate", "token": ...}``: its token, consumed; anything else passes."""
    data = _json_object(message)
    if data is None or data.get("type") != AUTHENTICATE:
        return None, message
    token = data.get("token")
    if not isinstance(token, str):
        raise TokenMalformed("the authenticate message's token is not a string")
    return token, None


def graphql_ws_format(message: Message) -> tuple[str | None, Message | None]:
    """``connection_init``: the token in its payload, and the frame without it."""
    data = _json_object(message)
    payload = None if data is None else data.get("payload")
    if data is None or data.get("type") != "connection_init" or not isinstance(payload, dict):
        return None, message
    payload = dict(payload)
    found = [payload.pop(key) for key in GRAPHQL_TOKEN_KEYS if key in payload]
    headers = payload.get("headers")
    if isinstance(headers, dict):
        headers = dict(headers)
        found += [headers.pop(key) for key in ("Authorization", "authorization") if key in headers]
        payload["headers"] = headers
    if any(not isinstance(value, str) for value in found):
        raise TokenMalformed("a token in connection_init's payload is not a string")
    tokens = {_without_bearer(value) for value in found} - {""}
    if len(tokens) > 1:
        raise TokenMalformed("connection_init's payload holds more than one token")
    forwarded = {"type": "websocket.receive", "text": json.dumps({**data, "payload": payload})}
    return (tokens.pop() if tokens else None), forwarded


def _without_bearer(value: str) -> str:
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if rest and scheme.lower() == "bearer" else value.strip()


def _json_object(message: Message) -> dict[str, Any] | None:
    text = message.get("text")
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


BUILT_IN_FORMATS: dict[str, MessageFormat] = {"json": json_format, "graphql-ws": graphql_ws_format}


@dataclass(frozen=True, slots=True)
class MessageRules:
    """How the ``"message"`` source reads the first frame, for one configuration."""

    read: MessageFormat
    timeout: float
    subprotocols: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Config) -> MessageRules:
        fmt = config.MESSAGE_FORMAT
        read = BUILT_IN_FORMATS[fmt] if isinstance(fmt, str) else fmt
        return cls(read, config.MESSAGE_TIMEOUT_SECONDS, config.MESSAGE_SUBPROTOCOLS)

    def subprotocol(self, offered: Sequence[str]) -> str | None:
        """The first subprotocol the client offered among ``MESSAGE_SUBPROTOCOLS``."""
        return next((name for name in offered if name in self.subprotocols), None)


class FirstMessage:
    """One connection's first frame: accept, wait for it, read the token from it."""

    __slots__ = ("accepted", "forwarded", "subprotocol", "token")

    def __init__(self) -> None:
        #: Whether the socket was accepted (a rejection is then a close, not a refusal).
        self.accepted = False
        self.subprotocol: str | None = None
        self.token: str | None = None
        #: The frame the application gets after ``websocket.connect``, if any.
        self.forwarded: Message | None = None

    async def read(self, scope: Scope, receive: Receive, send: Send, rules: MessageRules) -> bool:
        """Accept and read the first frame; ``False`` if the client left first.

        Raises :class:`AuthTimeout` (4408) when no frame comes within the timeout, and
        :class:`TokenMalformed` (4400) for a frame too large or that the format cannot read.
        """
        connect = await receive()
        if connect["type"] != "websocket.connect":
            return False
        self.subprotocol = rules.subprotocol(scope.get("subprotocols") or ())
        await send({"type": "websocket.accept", "subprotocol": self.subprotocol})
        self.accepted = True
        try:
            message = await asyncio.wait_for(receive(), rules.timeout)
        except asyncio.TimeoutError:
            raise AuthTimeout(f"no authentication message within {rules.timeout:g} s") from None
        if message["type"] != "websocket.receive":
            return False
        if len(message.get("text") or message.get("bytes") or "") > MAX_FIRST_MESSAGE_BYTES:
            raise TokenMalformed("first message larger than 64 KiB")
        try:
            token, self.forwarded = rules.read(message)
        except AuthenticationFailed:
            raise
        except Exception as exc:  # named by type only: its message may quote the frame
            raise TokenMalformed(
                f"MESSAGE_FORMAT could not read it ({type(exc).__name__})"
            ) from None
        self.token = token or None
        return True

    def replaying(self, receive: Receive) -> Receive:
        """``receive`` for the application: ``websocket.connect``, the forwarded frame, then
        the client's frames."""
        pending: deque[Message] = deque([{"type": "websocket.connect"}])
        if self.forwarded is not None:
            pending.append(self.forwarded)

        async def replay() -> Message:
            return pending.popleft() if pending else await receive()

        return replay


def absorbing_accept(send: Send) -> Send:
    """``send`` for an application whose socket the middleware has accepted already."""

    async def send_but_accept(message: Message) -> None:
        if message["type"] != "websocket.accept":
            await send(message)

    return send_but_accept
