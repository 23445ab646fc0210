"""Helpers for testing your own consumers behind channels_jwt.

``make_token(user, **claims)`` mints a token; ``JWTWebsocketCommunicator`` connects with it
through any source. Its ``connect()`` reports a rejection by the middleware as
``(False, close_code)``, the same shape channels' communicator uses for a close before accept,
although on the wire the middleware accepts and closes at once (so browsers see the code).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from channels.testing import WebsocketCommunicator

from channels_jwt.config import current_config
from channels_jwt.firstmessage import AUTHENTICATE
from channels_jwt.origins import is_trusted_origin, origin_of
from channels_jwt.sources import BY_NAME, ExtractionRules
from channels_jwt.tokens import issue_token

Transport = Literal["subprotocol", "query", "header", "cookie", "message"]

#: The ``Host`` the cookie transport sends when ``headers`` has none: the name Django's test
#: client uses, which Django's test environment adds to ``ALLOWED_HOSTS``.
TEST_HOST = "testserver"


def make_token(user: Any, **claims: Any) -> str:
    """A valid access token for ``user``; keyword arguments add or replace claims."""
    return issue_token(user, claims=claims)


class JWTWebsocketCommunicator(WebsocketCommunicator):  # type: ignore[misc]
    """A ``WebsocketCommunicator`` that presents ``token`` the way a real client would.

    ``transport`` is where the token goes: ``"subprotocol"`` (``[SUBPROTOCOL, token]``,
    after any ``subprotocols`` you pass), ``"query"`` (``?QUERY_PARAM=token``), ``"header"``
    (``Authorization: HEADER_SCHEME token``), ``"cookie"`` (``COOKIE_NAME=token`` with an
    ``Origin`` of ``origin``) or ``"message"`` (the first frame, sent by :meth:`connect` in
    ``MESSAGE_FORMAT``: ``{"type": "authenticate", "token": token}`` for ``"json"``,
    ``connection_init`` with ``{"Authorization": "Bearer <token>"}`` for ``"graphql-ws"``;
    ``message_format`` names the format when a route's ``settings=`` set its own).
    With ``token=None`` nothing is added.

    A cookie counts only from the request's own origin, so the cookie transport also sends
    ``Host: testserver`` unless ``headers`` has a ``Host``, and ``origin`` defaults to that
    host's own origin (``http://testserver``). Pass ``origin`` to play a page elsewhere
    (``"https://evil.example"``, or the same host on another port).
    """

    def __init__(
        self,
        application: Any,
        path: str,
        token: str | None = None,
        transport: Transport = "subprotocol",
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        subprotocols: list[str] | None = None,
        origin: str | None = None,
        message_format: str | None = None,
    ) -> None:
        super().__init__(
            application, path, headers=list(headers or []), subprotocols=list(subprotocols or [])
        )
        self._first_message: str | None = None
        if token is not None and transport == "message":
            fmt = current_config().MESSAGE_FORMAT if message_format is None else message_format
            self._first_message = _first_message(token, fmt)
        elif token is not None:
            self._present(token, transport, origin)

    def _present(self, token: str, transport: str, origin: str | None) -> None:
        source = BY_NAME.get(transport)
        if source is None:
            raise ValueError(f"unknown transport {transport!r}")
        rules = ExtractionRules.from_config(current_config(), is_trusted_origin)
        if transport == "cookie":
            origin = self._page_origin(origin)
        source.present(self.scope, token, rules, origin or "")

    def _page_origin(self, origin: str | None) -> str:
        """``origin``, else the request's own; a ``Host`` header is added if there is none."""
        headers = self.scope["headers"]
        hosts = [value for name, value in headers if name.lower() == b"host"]
        if not hosts:
            hosts.append(TEST_HOST.encode())
            headers.append((b"host", hosts[0]))
        if origin is not None:
            return origin
        return origin_of(self.scope.get("scheme"), hosts[0].decode("latin-1")) or "null"

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """Connect; ``(True, subprotocol)`` if accepted, ``(False, close_code)`` if refused.

        An accept immediately followed by a close (how the middleware rejects) counts as
        refused.
        """
        connected, detail = await super().connect(timeout)
        if not connected:
            return connected, detail
        if self._first_message is not None:
            await self.send_to(text_data=self._first_message)
            return await self._verdict(connected, detail, timeout)
        await asyncio.sleep(0)  # let a close sent right after the accept reach the queue
        pending = []
        while not self.output_queue.empty():
            pending.append(self.output_queue.get_nowait())
        for message in pending:
            self.output_queue.put_nowait(message)
        if pending and pending[0]["type"] == "websocket.close":
            return False, pending[0].get("code", 1000)
        return connected, detail

    async def _verdict(self, connected: bool, detail: Any, timeout: float) -> tuple[bool, Any]:
        """After the first message: refused if the next output, within ``timeout``, closes.

        The middleware absorbs the application's accept, so nothing says "authenticated" on
        the wire: an application that sends nothing at once costs ``timeout`` here.
        """
        if await self.receive_nothing(timeout):
            return connected, detail
        message = await self.output_queue.get()
        self.output_queue.put_nowait(message)
        if message["type"] == "websocket.close":
            return False, message.get("code", 1000)
        return connected, detail


def _first_message(token: str, fmt: object) -> str:
    """The first frame carrying ``token`` in the ``MESSAGE_FORMAT`` ``fmt``."""
    if fmt == "json":
        return json.dumps({"type": AUTHENTICATE, "token": token})
    if fmt == "graphql-ws":
        return json.dumps(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        )
    raise ValueError("transport='message' needs MESSAGE_FORMAT 'json' or 'graphql-ws'")
