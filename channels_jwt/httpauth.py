"""``AUTHENTICATE_HTTP``: HTTP requests through the same middleware, with the same checks.

GraphQL over HTTP, or any ASGI HTTP consumer routed through Channels' ``ProtocolTypeRouter``,
then sees the same ``scope["user"]`` and ``scope["jwt"]`` as the WebSocket beside it. A request
with ``Authorization: <HEADER_SCHEME> <token>`` is authenticated, the header removed from the
scope the application sees; a request without one is anonymous; a bad credential never passes
as anonymous: it is answered with its HTTP status (401, 403, 503) and a JSON body
``{"code": ..., "reason": ...}``, and a 401 carries ``WWW-Authenticate``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from channels_jwt.connection import JWTConnection
from channels_jwt.exceptions import AuthenticationFailed, ChannelsJWTError, TokenMalformed
from channels_jwt.handshake import close_code, refusal_response
from channels_jwt.pipeline import Pipeline
from channels_jwt.sources import HeaderSource, checked
from channels_jwt.types import ASGIApp, Headers, Receive, Scope, Send

logger = logging.getLogger("channels_jwt")


async def authenticate_http(
    pipeline: Pipeline, inner: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run ``inner`` with the request's user, or answer the request's refusal."""
    try:
        tokens, headers = _bearer(scope, pipeline)
        if not tokens:
            from django.contrib.auth.models import AnonymousUser

            await inner({**scope, "user": AnonymousUser(), "jwt": None}, receive, send)
            return
        if len(tokens) > 1:
            raise TokenMalformed("more than one Authorization header")
        claims, user = await pipeline.authenticate(checked(tokens[0], pipeline.extraction), scope)
    except AuthenticationFailed as exc:
        failure: ChannelsJWTError = exc
    except ChannelsJWTError as exc:
        logger.warning("HTTP authentication unavailable: %s", exc)
        failure = exc
    else:
        connection = JWTConnection(claims, HeaderSource.name)
        await inner({**scope, "headers": headers, "user": user, "jwt": connection}, receive, send)
        return
    logger.info(
        "HTTP authentication failed: %s (%s) code=%s", failure.reason, failure, failure.close_code
    )
    await refuse_http(send, failure, pipeline.close_codes)


def _bearer(scope: Scope, pipeline: Pipeline) -> tuple[list[str], Headers]:
    """The tokens of ``Authorization: <HEADER_SCHEME>`` headers (an empty one counts as none),
    and the headers without any of them."""
    scheme = pipeline.extraction.header_scheme.lower()
    tokens: list[str] = []
    kept: Headers = []
    for name, value in scope.get("headers") or ():
        given, _, token = value.decode("latin-1").strip().partition(" ")
        if name.lower() == b"authorization" and given.lower() == scheme:
            if token.strip():
                tokens.append(token.strip())
            continue
        kept.append((name, value))
    return tokens, kept


async def refuse_http(
    send: Send, failure: ChannelsJWTError, close_codes: Mapping[str, int]
) -> None:
    """Answer an HTTP request with ``failure``'s refusal (``CLOSE_CODES`` overrides applied)."""
    code = close_code(failure.reason, failure.close_code, close_codes)
    status, headers, body = refusal_response(failure, code, failure.reason)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
