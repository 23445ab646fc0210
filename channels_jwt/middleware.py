"""The ASGI middleware: orchestrates extraction, verification, revocation and user lookup.

Cheapest checks first: nothing touches the database or the network for a token that is
missing, malformed or wrongly signed. The inner application never runs for a rejected
connection, and the raw token never reaches it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from channels_jwt import signals
from channels_jwt.conf import Settings, activate, deactivate
from channels_jwt.conf import settings as project_settings
from channels_jwt.connection import ConnectionGuard, JWTConnection
from channels_jwt.exceptions import (
    AuthenticationFailed,
    ChannelsJWTError,
    RateLimited,
    ResolverError,
    TokenMissing,
)
from channels_jwt.extract import Extraction, extract_token
from channels_jwt.firstmessage import FirstMessage, absorbing_accept
from channels_jwt.handshake import (
    close_code,
    close_message,
    log_rejection,
    send_rejection,
    sending_marker,
)
from channels_jwt.httpauth import authenticate_http, refuse_http
from channels_jwt.pipeline import Pipeline
from channels_jwt.ratelimit import FailureLimiter
from channels_jwt.sources import checked
from channels_jwt.types import ASGIApp, Receive, Scope, Send, client_address

logger = logging.getLogger("channels_jwt")

_CREDENTIAL_HEADERS = frozenset({b"authorization", b"cookie", b"sec-websocket-protocol"})


class JWTAuthMiddleware:
    """Authenticate each WebSocket connection with a JWT before the inner app sees it.

    ``settings`` optionally overrides ``CHANNELS_JWT`` keys for this instance only. Other
    scope types pass through untouched. No per-connection state is kept on the instance.
    """

    def __init__(self, inner: ASGIApp, *, settings: Mapping[str, Any] | None = None) -> None:
        self.inner = inner
        self.settings = project_settings if settings is None else Settings(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.settings.value("AUTHENTICATE_HTTP") is True:
            await self._http(scope, receive, send)
            return
        if scope["type"] != "websocket":
            await self.inner(scope, receive, send)
            return
        # Set for the whole connection: hooks, refresh() and the consumer's own calls (for
        # example revoke_token) see this middleware's settings. A plain set/reset: this runs
        # on every handshake.
        activation = activate(self.settings)
        try:
            admitted = await self._admit(scope, receive, send)
            if admitted is None:
                return
            # Only this frame stays while the application runs: _admit's locals are gone, and
            # the tuple too (one per open socket).
            inner_scope, inner_receive, inner_send, guard = admitted
            del admitted
            try:
                await self.inner(inner_scope, inner_receive, inner_send)
            finally:
                if guard is not None:
                    await guard.stop()
        finally:
            deactivate(activation)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``AUTHENTICATE_HTTP``: the request's user, or its refusal (a 503 if misconfigured)."""
        activation = activate(self.settings)
        try:
            try:
                pipeline = Pipeline.for_settings(self.settings)
            except ImproperlyConfigured as exc:
                logger.error("channels_jwt is misconfigured: %s", exc)
                await refuse_http(send, ChannelsJWTError("misconfigured"), {})
                return
            await authenticate_http(pipeline, self.inner, scope, receive, send)
        finally:
            deactivate(activation)

    async def _admit(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[Scope, Receive, Send, ConnectionGuard | None] | None:
        """Authenticate; return what the application runs with, or reject and return None."""
        pipeline: Pipeline | None = None
        extraction: Extraction | None = None
        first: FirstMessage | None = None
        guard: ConnectionGuard | None = None
        counted: tuple[Pipeline, str] | None = None
        failure: ChannelsJWTError
        try:
            pipeline = Pipeline.for_settings(self.settings)
            # One deadline for everything the handshake waits on, from the count to the join.
            deadline = pipeline.deadline()
            if pipeline.rate_limiter is not None:
                address = await _begin_attempt(pipeline, pipeline.rate_limiter, scope, deadline)
                counted = None if address is None else (pipeline, address)
            extraction = extract_token(scope, pipeline.extraction)
            inner_scope = _inner_scope(scope, extraction)
            if extraction.token is None and pipeline.messages is not None:
                first = FirstMessage()
                if not await first.read(scope, receive, send, pipeline.messages):
                    return None  # the client left before it authenticated
                if first.token is not None:
                    token = checked(first.token, pipeline.extraction)
                    extraction = replace(extraction, token=token, source="message")
                # The application's receive replays the connect (and the frame it is owed);
                # its accept is absorbed. AUTH_TIMEOUT_SECONDS runs from the frame's arrival.
                receive, send = first.replaying(receive), absorbing_accept(send)
                deadline = pipeline.deadline()
            guard = await _identify(pipeline, extraction, inner_scope, receive, send, deadline)
        except AuthenticationFailed as exc:
            failure = exc
        except ChannelsJWTError as exc:
            logger.warning("WebSocket authentication unavailable: %s", exc)
            failure = exc
        except ImproperlyConfigured as exc:
            logger.error("channels_jwt is misconfigured: %s", exc)
            failure = ChannelsJWTError("misconfigured")
        except Exception as exc:
            logger.error(
                "WebSocket authentication error (%s); closing with auth_unavailable",
                type(exc).__name__,
                exc_info=True,
            )
            failure = ChannelsJWTError(f"unexpected {type(exc).__name__}")
        else:
            if counted is not None:
                await _forgive(*counted)
            if guard is None:
                marker = pipeline.extraction.subprotocol if extraction.marker_offered else None
                return inner_scope, receive, sending_marker(send, marker), None
            connection = guard.connection
            await signals.send_authenticated.send(
                JWTAuthMiddleware,
                scope=inner_scope,
                user=inner_scope["user"],
                claims=connection.claims,
                source=connection.source,
            )
            return inner_scope, guard.receive, guard.send, guard
        if counted is not None and not _counts(failure):
            await _forgive(*counted)
        accepted = first is not None and first.accepted
        await self._reject(scope, receive, send, failure, pipeline, extraction, accepted=accepted)
        return None

    async def _reject(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        failure: ChannelsJWTError,
        pipeline: Pipeline | None,
        extraction: Extraction | None,
        *,
        accepted: bool = False,
    ) -> None:
        overrides = pipeline.close_codes if pipeline else {}
        code = close_code(failure.reason, failure.close_code, overrides)
        source = extraction.source if extraction else None
        log_rejection(scope, failure, code, source)
        # The client is answered first: the receivers cannot delay its close.
        if accepted:  # by the "message" source: the socket is open, close it
            await send(close_message(code, failure.reason))
        else:
            await send_rejection(
                scope,
                receive,
                send,
                failure=failure,
                code=code,
                mode=pipeline.reject_mode if pipeline else "close",
                marker=pipeline.extraction.subprotocol if pipeline else "",
            )
        safe_scope = _without_credential(scope, extraction) if extraction else _scrubbed(scope)
        await signals.send_authentication_failed.send(
            JWTAuthMiddleware,
            scope=safe_scope,
            reason=failure.reason,
            close_code=code,
            source=source,
            error=failure,
        )


def JWTAuthMiddlewareStack(
    inner: ASGIApp, *, settings: Mapping[str, Any] | None = None
) -> JWTAuthMiddleware:
    """The stack to wrap your WebSocket router with in ``asgi.py``."""
    return JWTAuthMiddleware(inner, settings=settings)


async def _identify(
    pipeline: Pipeline,
    extraction: Extraction,
    scope: Scope,
    receive: Receive,
    send: Send,
    deadline: float | None,
) -> ConnectionGuard | None:
    """Set ``scope["user"]`` and ``scope["jwt"]``; return the guard of an authenticated one."""
    if extraction.token is None:
        if not pipeline.allow_anonymous:
            raise TokenMissing("no credential presented")
        from django.contrib.auth.models import AnonymousUser

        scope["user"] = AnonymousUser()
        scope["jwt"] = None
        return None
    started = time.time()
    claims, user = await pipeline.authenticate(extraction.token, scope, deadline)
    assert extraction.source is not None
    connection = JWTConnection(claims, extraction.source)
    guard = ConnectionGuard(
        connection,
        pipeline=pipeline,
        scope=scope,
        user_pk=getattr(user, "pk", None),
        receive=receive,
        send=send,
        marker=pipeline.extraction.subprotocol if extraction.marker_offered else None,
        started=started,
    )
    await guard.start(deadline)
    scope["user"] = user
    scope["jwt"] = connection
    return guard


async def _begin_attempt(
    pipeline: Pipeline, limiter: FailureLimiter, scope: Scope, deadline: float | None
) -> str | None:
    """Count the attempt as a failure until it ends otherwise: the address counted, if any.

    Raises ``RateLimited`` past the limit (that attempt not counted), and a 4503 error when
    the cache cannot count: it fails closed, like the revocation check.
    """
    address = client_address(scope)
    if address is None:
        return None
    try:
        limited = await pipeline.bounded(limiter.begin(address), "the rate limit check", deadline)
    except ChannelsJWTError:
        raise
    except Exception as exc:
        raise ResolverError(f"rate limit cache unavailable ({type(exc).__name__})") from exc
    if limited:
        await _forgive(pipeline, address)
        raise RateLimited("too many failed handshakes from this address")
    return address


def _counts(failure: ChannelsJWTError) -> bool:
    """Whether ``failure`` is the client's (an outage or the limit's own refusal is not)."""
    return isinstance(failure, AuthenticationFailed) and not isinstance(failure, RateLimited)


async def _forgive(pipeline: Pipeline, address: str) -> None:
    """Take back the count of an attempt that did not fail."""
    assert pipeline.rate_limiter is not None
    try:
        await pipeline.bounded(pipeline.rate_limiter.forgive(address), "taking back a count")
    except Exception as exc:
        # The outcome stands; the address keeps one count too many until its window ends.
        logger.warning("Could not take back a handshake's count (%s)", type(exc).__name__)


def _without_credential(scope: Scope, extraction: Extraction) -> Scope:
    return {
        **scope,
        "subprotocols": extraction.subprotocols,
        "query_string": extraction.query_string,
        "headers": extraction.headers,
    }


def _inner_scope(scope: Scope, extraction: Extraction) -> Scope:
    """The scope the application gets; ``user`` and ``jwt`` are set once authenticated."""
    # Both keys present from the start: setting them later then costs no resize.
    return {
        **scope,
        "subprotocols": extraction.subprotocols,
        "query_string": extraction.query_string,
        "headers": extraction.headers,
        "user": None,
        "jwt": None,
    }


def _scrubbed(scope: Scope) -> Scope:
    """A copy of a scope whose credential could not be located: drop every place it may be."""
    return {
        **scope,
        "subprotocols": [],
        "query_string": b"",
        "headers": [
            (name, value)
            for name, value in scope.get("headers") or ()
            if name.lower() not in _CREDENTIAL_HEADERS
        ],
    }
