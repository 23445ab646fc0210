"""An authenticated connection: ``scope["jwt"]``, and the guard that keeps it honest.

:class:`JWTConnection` is what a consumer sees. :class:`ConnectionGuard` sits between the
inner application and the server for the life of the socket: it names the marker subprotocol
in the accept, closes the socket with 4440 when the token expires (a loop timer, plus a check
of every incoming message for servers that only flush a timer's close when the client next
sends), closes it with 4441 when the token or user is revoked live, and with 4503 when the
channel layer that carries revocations dies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from channels_jwt.exceptions import (
    AuthenticationFailed,
    ChannelsJWTError,
    CloseCode,
    ResolverError,
    TokenInvalid,
    TokenRevoked,
)
from channels_jwt.expiry import Due, expiry_clock
from channels_jwt.expiry import cancel as cancel_expiry
from channels_jwt.handshake import close_code, close_message, naming_marker
from channels_jwt.live import LiveSubscription
from channels_jwt.logs import loggable_path
from channels_jwt.types import Message, Receive, Scope, Send, read_only
from channels_jwt.types import expires_at as expiry_of

if TYPE_CHECKING:
    from channels_jwt.pipeline import Pipeline

logger = logging.getLogger("channels_jwt")


class JWTConnection:
    """What the middleware verified for this connection.

    ``claims`` is the verified payload, ``source`` where the token came from
    (``"subprotocol"``, ``"query"``, ``"header"``, ``"cookie"`` or ``"message"``),
    ``expires_at`` the token's ``exp`` as an aware UTC ``datetime`` (``None`` without
    ``exp``). After the middleware itself closed the socket, ``close_code`` and
    ``close_reason`` say why (servers report different disconnect codes to the application);
    they are ``None`` otherwise.
    """

    __slots__ = ("_claims", "_close_code", "_close_reason", "_guard", "_source")

    def __init__(self, claims: Mapping[str, Any], source: str) -> None:
        self._claims = read_only(claims)
        self._source = source
        self._close_code: int | None = None
        self._close_reason: str | None = None
        self._guard: ConnectionGuard | None = None

    @property
    def claims(self) -> Mapping[str, Any]:
        """The verified claims (a read-only mapping)."""
        return self._claims

    @property
    def source(self) -> str:
        """Where the token was found."""
        return self._source

    @property
    def expires_at(self) -> datetime | None:
        """When the token expires (aware, UTC), or ``None``."""
        return expiry_of(self._claims)

    @property
    def close_code(self) -> int | None:
        """The code the middleware closed the socket with, if it did."""
        return self._close_code

    @property
    def close_reason(self) -> str | None:
        """The reason the middleware closed the socket with, if it did."""
        return self._close_reason

    def close_code_for(self, error: ChannelsJWTError) -> int:
        """The code to close this connection with for ``error``, ``CLOSE_CODES`` applied.

        For consumers that close the socket themselves after a failed :meth:`refresh`:
        ``await self.close(code=self.scope["jwt"].close_code_for(exc))``.
        """
        overrides = self._guard.pipeline.close_codes if self._guard is not None else {}
        return close_code(error.reason, error.close_code, overrides)

    async def refresh(self, token: str) -> None:
        """Replace the connection's token with ``token``, verified like the first one.

        The new token must pass the same pipeline (signature, claims, revocation, user) and
        name the same user. On success ``claims`` and ``expires_at`` change and the expiry
        timer is re-armed. On failure the ``AuthenticationFailed`` subclass is raised and
        the connection is left as it was: the consumer decides, e.g. with
        ``await self.close(code=exc.close_code)``.
        """
        if self._guard is None:
            raise RuntimeError("this connection is not guarded by JWTAuthMiddleware")
        await self._guard.refresh(token)

    def __repr__(self) -> str:
        return f"<JWTConnection source={self._source!r} expires_at={self.expires_at}>"

    # What the guard may change, and nothing else: it owns the socket, this object the state.

    def _guarded_by(self, guard: ConnectionGuard) -> None:
        self._guard = guard

    def _renewed(self, claims: Mapping[str, Any]) -> None:
        self._claims = read_only(claims)

    def _closed_with(self, code: int, reason: str) -> None:
        self._close_code = code
        self._close_reason = reason


class ConnectionGuard:
    """Watches one authenticated connection for expiry and revocation (see module docs)."""

    __slots__ = (
        "_accepted",
        "_closed",
        "_closing",
        "_marker",
        "_receive",
        "_send",
        "_subscription",
        "_timer",
        "connection",
        "pipeline",
        "scope",
        "started",
        "user_pk",
    )

    def __init__(
        self,
        connection: JWTConnection,
        *,
        pipeline: Pipeline,
        scope: Scope,
        user_pk: Any,
        receive: Receive,
        send: Send,
        marker: str | None,
        started: float,
    ) -> None:
        self.connection = connection
        self.pipeline = pipeline
        self.scope = scope
        self.user_pk = user_pk
        self.started = started
        self._receive = receive
        self._send = send
        self._marker = marker
        self._timer: Due | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = False
        self._accepted = False
        self._subscription: LiveSubscription | None = None
        connection._guarded_by(self)

    async def start(self, deadline: float | None = None) -> None:
        """Join the live-revocation groups when ``LIVE_REVOCATION`` is on.

        Then ask whether the token was revoked, or its user disconnected, since the handshake
        began (``started``): either may have sent its message before the groups had this
        connection in them. Only then listen, so no message sent after the join is missed.
        Raises ``TokenRevoked`` (4441) when so. Both steps end by the handshake's
        ``deadline``, or else raise a 4503 error.
        """
        if not self.pipeline.live_revocation:
            return
        subscription = LiveSubscription(self._revoked, self._layer_failed)
        # The user's group is named by the canonical USER_ID_FIELD value, the one
        # disconnect_user() is given (a user, or that value), whatever the resolver returns.
        user_id = self.pipeline.user_id(self.connection.claims)
        try:
            await self.pipeline.bounded(
                subscription.join(user_id, self.connection.claims),
                "joining the channel layer",
                deadline,
            )
        except BaseException:
            await subscription.leave()
            raise
        try:
            revoked = await self.pipeline.bounded(
                self.pipeline.revoked_while_joining(self.connection.claims, user_id, self.started),
                "the revocation check after joining",
                deadline,
            )
        except BaseException as exc:
            await subscription.leave()
            if isinstance(exc, ChannelsJWTError) or not isinstance(exc, Exception):
                raise
            raise ResolverError(f"revocation check failed ({type(exc).__name__})") from exc
        if revoked:
            await subscription.leave()
            raise TokenRevoked("revoked while the connection joined its groups")
        subscription.listen()
        self._subscription = subscription

    async def stop(self) -> None:
        """Cancel the timer and leave the groups; called when the application returns."""
        self._cancel_timer()
        if self._subscription is not None:
            await self._subscription.leave()
            self._subscription = None

    async def receive(self) -> Message:
        """The application's ``receive``: no message passes once the token has expired."""
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._cancel_timer()
                return message
            if self._closed:
                continue
            if message["type"] == "websocket.receive" and self._expired():
                await self.close(CloseCode.TOKEN_EXPIRED, "token_expired")
                continue
            return message

    async def send(self, message: Message) -> None:
        """The application's ``send``: names the marker on accept and arms the timer."""
        kind = message["type"]
        if self._closed:
            return  # the middleware closed the socket; later frames have nowhere to go
        if kind == "websocket.accept":
            await self._send(naming_marker(message, self._marker))
            self._accepted = True
            self._arm_timer()
            return
        if kind == "websocket.close":
            self._cancel_timer()
        await self._send(message)

    async def close(self, code: int, reason: str) -> None:
        """Close the socket from the middleware's side and record why (once)."""
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        code = close_code(reason, code, self.pipeline.close_codes)
        self.connection._closed_with(code, reason)
        logger.info(
            "WebSocket closed by channels_jwt: %s code=%s path=%s",
            reason,
            code,
            loggable_path(self.scope),
        )
        try:
            if not self._accepted and self.pipeline.reject_mode != "deny":
                # Closed before the application accepted (the layer was lost meanwhile):
                # accept first, as a rejection does, so the client gets the code.
                await self._send(naming_marker({"type": "websocket.accept"}, self._marker))
                self._accepted = True
            await self._send(close_message(code, reason))
        except Exception as exc:  # the server may already have gone away
            logger.warning("Closing the socket failed: %s", type(exc).__name__)

    async def refresh(self, token: str) -> None:
        """Verify ``token`` through the pipeline, require the same user, swap the claims."""
        claims, user = await self.pipeline.authenticate(token, self.scope)
        if not self._same_user(claims, getattr(user, "pk", None)):
            raise TokenInvalid("refresh token names another user")
        if self._subscription is not None:
            try:
                await self._subscription.replace_token(self.connection.claims, claims)
            except Exception as exc:
                raise ChannelsJWTError(f"channel layer unavailable ({type(exc).__name__})") from exc
        self.connection._renewed(claims)
        self._cancel_timer()
        if self._accepted:
            self._arm_timer()

    def _same_user(self, claims: Mapping[str, Any], pk: Any) -> bool:
        """The same canonical user-id claim, and the same ``pk`` where the resolver gives one.

        Nothing matches ``None``: a resolver whose users have no ``pk`` is judged by the claim.
        """
        try:
            same_claim = bool(
                self.pipeline.user_id(claims) == self.pipeline.user_id(self.connection.claims)
            )
        except AuthenticationFailed:
            return False
        if pk is None and self.user_pk is None:
            return same_claim
        return same_claim and pk is not None and bool(pk == self.user_pk)

    def _deadline(self) -> float | None:
        exp = self.connection.claims.get("exp")
        if exp is None or not self.pipeline.close_on_expiry:
            return None
        # Whole seconds, as at the handshake (jwt.decode's rule): a token refused from X.0
        # there must not keep an open socket until X.9.
        return int(exp) + self.pipeline.leeway

    def _expired(self) -> bool:
        deadline = self._deadline()
        return deadline is not None and time.time() >= deadline

    def _arm_timer(self) -> None:
        deadline = self._deadline()
        if deadline is None or self._closed:
            return
        # One loop timer for every connection (channels_jwt.expiry): a handle per socket
        # would cost memory and instructions for the few distinct whole-second deadlines.
        self._timer = expiry_clock().add(deadline, self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            cancel_expiry(self._timer, self)
            self._timer = None

    def expired(self) -> None:
        """The token's ``exp`` (plus ``LEEWAY``) has passed: close with 4440 (the clock calls)."""
        self._timer = None
        self._closing = asyncio.create_task(self.close(CloseCode.TOKEN_EXPIRED, "token_expired"))

    async def _revoked(self) -> None:
        await self.close(CloseCode.TOKEN_REVOKED, "token_revoked")

    async def _layer_failed(self) -> None:
        await self.close(CloseCode.AUTH_UNAVAILABLE, "auth_unavailable")
