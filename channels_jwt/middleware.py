"""The ASGI middleware: orchestrates extraction, verification, revocation and user lookup.

Cheapest checks first: nothing touches the database or the network for a token that is
missing, malformed or wrongly signed. The inner application never runs for a rejected
connection, and the raw token never reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async
from django.core.exceptions import ImproperlyConfigured

from channels_jwt import signals
from channels_jwt.checks import check_settings, serious
from channels_jwt.conf import Settings, activated
from channels_jwt.conf import settings as project_settings
from channels_jwt.connection import JWTConnection
from channels_jwt.exceptions import (
    AuthenticationFailed,
    ChannelsJWTError,
    ResolverError,
    TokenMissing,
    TokenRevoked,
    UserRejected,
)
from channels_jwt.extract import Extraction, ExtractionRules, extract_token
from channels_jwt.origins import is_trusted_origin
from channels_jwt.rejection import close_code, log_rejection, send_rejection
from channels_jwt.verify import TokenVerifier

logger = logging.getLogger("channels_jwt")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_CREDENTIAL_HEADERS = frozenset({b"authorization", b"cookie", b"sec-websocket-protocol"})


@dataclass(frozen=True)
class Pipeline:
    """Everything one handshake needs, built from settings once and cached."""

    extraction: ExtractionRules
    verifier: TokenVerifier
    resolve_user: Callable[[Mapping[str, Any], Scope], Awaitable[Any]]
    is_revoked: Callable[[Mapping[str, Any]], Awaitable[bool]] | None
    allow_anonymous: bool
    reject_mode: str
    close_codes: Mapping[str, int]

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        """Validate ``settings`` (the system checks) and build the pipeline."""
        errors = serious(check_settings(settings))
        if errors:
            raise ImproperlyConfigured(f"{errors[0].id}: {errors[0].msg}")
        revocation_check = settings.REVOCATION_CHECK
        return cls(
            extraction=ExtractionRules(
                sources=settings.TOKEN_SOURCES,
                subprotocol=settings.SUBPROTOCOL,
                query_param=settings.QUERY_PARAM,
                header_scheme=settings.HEADER_SCHEME,
                cookie_name=settings.COOKIE_NAME,
                max_token_bytes=settings.MAX_TOKEN_BYTES,
                trusted_origin=is_trusted_origin,
            ),
            verifier=TokenVerifier.from_settings(
                settings, require_jti=revocation_check is not None
            ),
            resolve_user=as_async(settings.USER_RESOLVER),
            is_revoked=None if revocation_check is None else as_async(revocation_check),
            allow_anonymous=settings.ALLOW_ANONYMOUS,
            reject_mode=settings.REJECT_MODE,
            close_codes=dict(settings.CLOSE_CODES),
        )


def as_async(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Return ``function`` if it is async, else run it in channels' database thread."""
    if iscoroutinefunction(function) or iscoroutinefunction(type(function).__call__):
        return function
    return database_sync_to_async(function)  # type: ignore[no-any-return]


class JWTAuthMiddleware:
    """Authenticate each WebSocket connection with a JWT before the inner app sees it.

    ``settings`` optionally overrides ``CHANNELS_JWT`` keys for this instance only. Other
    scope types pass through untouched. No per-connection state is kept on the instance.
    """

    def __init__(self, inner: ASGIApp, *, settings: Mapping[str, Any] | None = None) -> None:
        self.inner = inner
        self.settings = project_settings if settings is None else Settings(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.inner(scope, receive, send)
            return
        with activated(self.settings):
            await self._authenticate(scope, receive, send)

    async def _authenticate(self, scope: Scope, receive: Receive, send: Send) -> None:
        pipeline: Pipeline | None = None
        extraction: Extraction | None = None
        failure: ChannelsJWTError
        try:
            pipeline = self.settings.derived("pipeline", self._build_pipeline)
            extraction = extract_token(scope, pipeline.extraction)
            inner_scope = _without_credential(scope, extraction)
            await _identify(pipeline, extraction, inner_scope)
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
            connection = inner_scope["jwt"]
            if connection is not None:
                await _send_signal(
                    signals.authenticated,
                    inner_scope,
                    user=inner_scope["user"],
                    claims=connection.claims,
                    source=connection.source,
                )
            await self.inner(inner_scope, receive, _echoing_marker(send, extraction, pipeline))
            return
        await self._reject(scope, receive, send, failure, pipeline, extraction)

    def _build_pipeline(self) -> Pipeline:
        return Pipeline.from_settings(self.settings)

    async def _reject(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        failure: ChannelsJWTError,
        pipeline: Pipeline | None,
        extraction: Extraction | None,
    ) -> None:
        overrides = pipeline.close_codes if pipeline else {}
        code = close_code(failure, overrides)
        source = extraction.source if extraction else None
        log_rejection(scope, failure, code, source)
        safe_scope = _without_credential(scope, extraction) if extraction else _scrubbed(scope)
        await _send_signal(
            signals.authentication_failed,
            safe_scope,
            reason=failure.reason,
            close_code=code,
            source=source,
            error=failure,
        )
        await send_rejection(
            scope,
            receive,
            send,
            failure=failure,
            code=code,
            mode=pipeline.reject_mode if pipeline else "close",
            marker=pipeline.extraction.subprotocol if pipeline else "",
        )


def JWTAuthMiddlewareStack(
    inner: ASGIApp, *, settings: Mapping[str, Any] | None = None
) -> JWTAuthMiddleware:
    """The stack to wrap your WebSocket router with in ``asgi.py``."""
    return JWTAuthMiddleware(inner, settings=settings)


async def _identify(pipeline: Pipeline, extraction: Extraction, scope: Scope) -> None:
    """Verify the credential and set ``scope["user"]`` and ``scope["jwt"]``."""
    if extraction.token is None:
        if not pipeline.allow_anonymous:
            raise TokenMissing("no credential presented")
        from django.contrib.auth.models import AnonymousUser

        scope["user"] = AnonymousUser()
        scope["jwt"] = None
        return
    claims = await pipeline.verifier.averify(extraction.token)
    if pipeline.is_revoked is not None:
        try:
            revoked = await pipeline.is_revoked(claims)
        except Exception as exc:
            raise ResolverError(f"revocation check failed ({type(exc).__name__})") from exc
        if revoked:
            raise TokenRevoked("token revoked")
    try:
        user = await pipeline.resolve_user(claims, scope)
    except ChannelsJWTError:
        raise
    except Exception as exc:
        raise ResolverError(f"user lookup failed ({type(exc).__name__})") from exc
    if user is None:
        raise UserRejected("resolver found no user")
    assert extraction.source is not None
    scope["user"] = user
    scope["jwt"] = JWTConnection(claims, extraction.source)


def _without_credential(scope: Scope, extraction: Extraction) -> Scope:
    return {
        **scope,
        "subprotocols": extraction.subprotocols,
        "query_string": extraction.query_string,
        "headers": extraction.headers,
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


def _echoing_marker(send: Send, extraction: Extraction, pipeline: Pipeline) -> Send:
    """Wrap ``send`` so an accept without a subprotocol names the marker the client offered."""
    if not extraction.marker_offered:
        return send
    marker = pipeline.extraction.subprotocol

    async def send_with_marker(message: Mapping[str, Any]) -> None:
        if message["type"] == "websocket.accept" and not message.get("subprotocol"):
            message = {**message, "subprotocol": marker}
        await send(message)

    return send_with_marker


async def _send_signal(signal: Any, scope: Scope, **kwargs: Any) -> None:
    """Send ``signal`` robustly, off the event loop (receivers may use the ORM)."""
    if not signal.has_listeners(JWTAuthMiddleware):
        return
    send_robust = database_sync_to_async(signal.send_robust)
    responses = await send_robust(JWTAuthMiddleware, scope=scope, **kwargs)
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error(
                "Receiver %r of a channels_jwt signal raised %s",
                receiver,
                type(response).__name__,
            )
