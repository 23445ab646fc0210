"""The one owner of the WebSocket protocol: accept (naming the marker), close, refuse.

Every close the package sends takes its code from :func:`close_code`, so ``CLOSE_CODES``
overrides apply alike at the handshake, on an open socket and in ``TokenRefreshMixin``; every
accept goes through :func:`naming_marker`, so the marker a client offered is echoed.

A refused connection is told why, and logged once.
``REJECT_MODE="close"`` completes the upgrade and closes at once with the code, which is the
only way a browser ever sees a code. ``"deny"`` refuses the upgrade: with an HTTP 401/403/
429/503 and a JSON body where the server offers the ASGI denial-response extension, otherwise
with a close before accept (which every server turns into HTTP 403).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from channels_jwt.exceptions import HTTP_STATUS, ChannelsJWTError, TokenMissing
from channels_jwt.logs import loggable_path
from channels_jwt.types import Message, Send, client_label

logger = logging.getLogger("channels_jwt")

MAX_REASON_BYTES = 123
_DENIAL_EXTENSION = "websocket.http.response"
#: Longest subprotocol echoed on a rejection when the client did not offer the marker.
_MAX_ECHOED_SUBPROTOCOL = 64


def close_code(reason: str, code: int, overrides: Mapping[str, int]) -> int:
    """The code to close with for ``reason``: ``code``, unless ``CLOSE_CODES`` overrides it.

    Always a plain ``int``: daphne refuses anything else (an ``IntEnum`` included).
    """
    return int(overrides.get(reason, code))


def close_message(code: int, reason: str) -> Message:
    """The ``websocket.close`` message for ``code``, its reason capped at 123 bytes."""
    return {"type": "websocket.close", "code": code, "reason": _truncated(reason)}


def naming_marker(message: Message, marker: str | None) -> Message:
    """``message`` with the marker as subprotocol, if it is an accept that names none."""
    if marker and message["type"] == "websocket.accept" and not message.get("subprotocol"):
        return {**message, "subprotocol": marker}
    return message


def sending_marker(send: Send, marker: str | None) -> Send:
    """Wrap ``send`` so an accept without a subprotocol names the marker the client offered."""
    if marker is None:
        return send

    async def send_naming_marker(message: Message) -> None:
        await send(naming_marker(message, marker))

    return send_naming_marker


def rejection_subprotocol(offered: Sequence[str], marker: str) -> str | None:
    """The subprotocol to accept with before closing, so browsers complete the handshake.

    The marker when offered; otherwise the first offered non-empty value that cannot be a
    token (a token is never echoed), otherwise none.
    """
    if marker in offered:
        return marker
    for value in offered:
        if value and len(value) <= _MAX_ECHOED_SUBPROTOCOL and not value.startswith("eyJ"):
            return value
    return None


async def send_rejection(
    scope: Mapping[str, Any],
    receive: Any,
    send: Any,
    *,
    failure: ChannelsJWTError,
    code: int,
    mode: str,
    marker: str,
) -> None:
    """Wait for ``websocket.connect`` and refuse the connection as ``mode`` says."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if mode == "deny":
        if _DENIAL_EXTENSION in (scope.get("extensions") or {}):
            await _send_denial_response(send, failure, code, _truncated(failure.reason))
        else:
            await send(close_message(code, failure.reason))
        return
    subprotocol = rejection_subprotocol(scope.get("subprotocols") or (), marker)
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    await send(close_message(code, failure.reason))


async def _send_denial_response(
    send: Any, failure: ChannelsJWTError, code: int, reason: str
) -> None:
    status, headers, body = refusal_response(failure, code, reason)
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def refusal_response(
    failure: ChannelsJWTError, code: int, reason: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The HTTP refusal of ``failure``: its status, headers and JSON body.

    ``{"code": ..., "reason": ...}``; a 401 carries ``WWW-Authenticate: Bearer``, with
    ``error="invalid_token"`` when a token was presented (RFC 6750).
    """
    status = HTTP_STATUS.get(code, 401)
    body = json.dumps({"code": code, "reason": reason}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        challenge = (
            b"Bearer" if isinstance(failure, TokenMissing) else (b'Bearer error="invalid_token"')
        )
        headers.append((b"www-authenticate", challenge))
    return status, headers, body


def _truncated(reason: str) -> str:
    return reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


def log_rejection(
    scope: Mapping[str, Any], failure: ChannelsJWTError, code: int, source: str | None
) -> None:
    """One INFO line per rejection: reason, code, source, path (never the query) and client."""
    logger.info(
        "WebSocket authentication failed: %s (%s) code=%s source=%s path=%s client=%s",
        failure.reason,
        failure,
        code,
        source or "-",
        loggable_path(scope),
        client_label(scope),
    )
