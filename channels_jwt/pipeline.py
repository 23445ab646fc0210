"""The authentication steps after extraction: verify, check revocation, resolve the user.

One :class:`Pipeline` is built per configuration (and cached): the handshake and
``scope["jwt"].refresh()`` both run a token through :meth:`Pipeline.authenticate`, so a
refreshed token is held to exactly the rules of the first one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async

from channels_jwt.conf import Config, Settings
from channels_jwt.config import config_of
from channels_jwt.exceptions import ChannelsJWTError, ResolverError, TokenRevoked, UserRejected
from channels_jwt.firstmessage import MessageRules
from channels_jwt.origins import is_trusted_origin
from channels_jwt.ratelimit import FailureLimiter, parse_rate
from channels_jwt.revocation import bound_revocation_check, revoked_while_joining
from channels_jwt.sources import ExtractionRules
from channels_jwt.types import Claims, Scope
from channels_jwt.users import bound_resolver, token_user, user_id_of
from channels_jwt.verify import TokenVerifier

T = TypeVar("T")


def as_async(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Return ``function`` if it is async, else run it in channels' database thread."""
    if iscoroutinefunction(function) or iscoroutinefunction(type(function).__call__):
        return function
    return database_sync_to_async(function)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Pipeline:
    """Everything one handshake needs, built from one configuration once and cached."""

    extraction: ExtractionRules
    verifier: TokenVerifier
    resolve_user: Callable[[Claims, Scope], Awaitable[Any]]
    #: The canonical user id a token's claims name (refresh requires the same one).
    user_id: Callable[[Claims], Any]
    is_revoked: Callable[[Claims], Awaitable[bool]] | None
    allow_anonymous: bool
    reject_mode: str
    close_codes: Mapping[str, int]
    close_on_expiry: bool
    leeway: float
    live_revocation: bool
    #: With ``live_revocation``: whether the token was revoked, or its user disconnected,
    #: since an instant (asked once a connection has joined its groups).
    revoked_while_joining: Callable[[Claims, Any, float], Awaitable[bool]]
    #: ``None`` when no step can wait on I/O (static keys, token_user, no revocation check,
    #: no rate limit, no live revocation): nothing to bound, and no timer to arm per handshake.
    auth_timeout: float | None
    rate_limiter: FailureLimiter | None
    #: How the ``"message"`` source reads the first frame (``None``: not a source).
    messages: MessageRules | None
    #: Whether HTTP scopes are authenticated too (``AUTHENTICATE_HTTP``).
    authenticate_http: bool

    @classmethod
    def from_config(cls, config: Config) -> Pipeline:
        """Bind the steps of one handshake to ``config``."""
        revocation_check = config.REVOCATION_CHECK
        rate = parse_rate(config.RATE_LIMIT)
        resolver = config.USER_RESOLVER
        stateless = (
            resolver is token_user
            and revocation_check is None
            and rate is None
            and not config.LIVE_REVOCATION
        )
        may_wait = bool(config.JWK_URL) or not stateless
        return cls(
            extraction=ExtractionRules.from_config(config, is_trusted_origin),
            verifier=TokenVerifier.of(config),
            resolve_user=as_async(bound_resolver(resolver, config)),
            user_id=partial(user_id_of, config),
            is_revoked=(
                None
                if revocation_check is None
                else as_async(bound_revocation_check(revocation_check, config))
            ),
            allow_anonymous=config.ALLOW_ANONYMOUS,
            reject_mode=config.REJECT_MODE,
            close_codes=config.CLOSE_CODES,
            close_on_expiry=config.CLOSE_ON_EXPIRY,
            leeway=config.LEEWAY,
            live_revocation=config.LIVE_REVOCATION,
            revoked_while_joining=partial(revoked_while_joining, config),
            auth_timeout=config.AUTH_TIMEOUT_SECONDS if may_wait else None,
            rate_limiter=None if rate is None else FailureLimiter(config.RATE_LIMIT_CACHE, *rate),
            messages=(
                MessageRules.from_config(config) if "message" in config.TOKEN_SOURCES else None
            ),
            authenticate_http=config.AUTHENTICATE_HTTP,
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> Pipeline:
        """The pipeline of ``settings``; ``ImproperlyConfigured`` if they have an error.

        Parsed and built once, and again after ``setting_changed``.
        """
        return settings.derived("pipeline", lambda: cls.from_config(config_of(settings)))

    async def authenticate(
        self, token: str, scope: Scope, deadline: float | None = None
    ) -> tuple[Mapping[str, Any], Any]:
        """Verify ``token``, check revocation, resolve the user: ``(claims, user)``.

        ``claims`` is a read-only mapping: the hooks, the user and ``scope["jwt"]`` share it.

        Raises an ``AuthenticationFailed`` for a bad token or user, and a root
        ``ChannelsJWTError`` (4503) when a key fetch, a revocation check or the user lookup
        crashes or, together, runs past ``deadline`` (by default ``AUTH_TIMEOUT_SECONDS`` from
        now): the connection fails closed.
        """
        return await self.bounded(self._authenticate(token, scope), "authentication", deadline)

    def deadline(self) -> float | None:
        """When a handshake beginning now must have been decided (``time.monotonic()``).

        ``None`` when nothing it does can wait (no bound is needed).
        """
        return None if self.auth_timeout is None else time.monotonic() + self.auth_timeout

    async def bounded(self, step: Awaitable[T], what: str, deadline: float | None = None) -> T:
        """Await ``step`` until ``deadline``, else raise a 4503 error.

        Without a deadline, ``step`` has ``AUTH_TIMEOUT_SECONDS`` of its own. The steps of one
        handshake share its deadline: together they never take longer.
        """
        if self.auth_timeout is None:
            return await step
        seconds = self.auth_timeout if deadline is None else deadline - time.monotonic()
        try:
            return await _within(max(seconds, 0.0), step)
        except asyncio.TimeoutError:
            raise ResolverError(f"{what} took over {self.auth_timeout:g} s") from None

    async def _authenticate(self, token: str, scope: Scope) -> tuple[Mapping[str, Any], Any]:
        # The verifier's dict is new and nobody else holds it: a view, no copy.
        claims = MappingProxyType(await self.verifier.averify(token))
        if self.is_revoked is not None:
            try:
                revoked = await self.is_revoked(claims)
            except Exception as exc:
                raise ResolverError(f"revocation check failed ({type(exc).__name__})") from exc
            if revoked:
                raise TokenRevoked("token revoked")
        try:
            user = await self.resolve_user(claims, scope)
        except ChannelsJWTError:
            raise
        except Exception as exc:
            raise ResolverError(f"user lookup failed ({type(exc).__name__})") from exc
        if user is None:
            raise UserRejected("resolver found no user")
        return claims, user


async def _within(seconds: float, step: Awaitable[T]) -> T:
    # asyncio.timeout (3.11+) only arms a timer; wait_for would wrap the step in a new task.
    # A synchronous resolver stuck in a worker thread cannot be interrupted: the handshake
    # is answered, the thread stays busy until the call returns.
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await step
    return await asyncio.wait_for(step, seconds)  # pragma: no cover (Python 3.10)
