"""Authenticate a token obtained some other way: an HTTP view, a custom protocol.

:func:`aauthenticate_token` runs the middleware's own pipeline (size limits, verification,
revocation, the user lookup, within ``AUTH_TIMEOUT_SECONDS``) on a token string and returns
an :class:`AuthenticatedToken`. Failures raise the exceptions the middleware turns into close
codes: an ``AuthenticationFailed`` subclass for the token or the user, a root
``ChannelsJWTError`` when a check could not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync

from channels_jwt.conf import Settings, activate, deactivate
from channels_jwt.conf import settings as project_settings
from channels_jwt.exceptions import TokenMissing
from channels_jwt.pipeline import Pipeline
from channels_jwt.sources import checked
from channels_jwt.types import expires_at

#: The scope a resolver is given for a token authenticated outside a WebSocket connection.
SCOPE_TYPE = "channels_jwt.authenticate_token"


@dataclass(frozen=True, slots=True)
class AuthenticatedToken:
    """A token that passed every check: its user, its claims (read-only) and its expiry."""

    user: Any
    claims: Mapping[str, Any]
    #: When the token expires (aware, UTC), or ``None`` when it has no ``exp``.
    expires_at: datetime | None


async def aauthenticate_token(
    token: str, *, settings: Mapping[str, Any] | None = None
) -> AuthenticatedToken:
    """Verify ``token``, check revocation and resolve its user, as the middleware does.

    ``settings`` overrides ``CHANNELS_JWT`` keys for this call, as the middleware's own
    ``settings=`` do. A resolver is given the scope ``{"type":
    "channels_jwt.authenticate_token"}``. Raises ``ImproperlyConfigured`` when the
    configuration has a system-check error.
    """
    own = project_settings if settings is None else Settings(settings)
    pipeline = Pipeline.for_settings(own)
    if not token:
        raise TokenMissing("no token given")
    activation = activate(own)
    try:
        claims, user = await pipeline.authenticate(
            checked(token, pipeline.extraction), {"type": SCOPE_TYPE}
        )
    finally:
        deactivate(activation)
    return AuthenticatedToken(user=user, claims=claims, expires_at=expires_at(claims))


def authenticate_token(
    token: str, *, settings: Mapping[str, Any] | None = None
) -> AuthenticatedToken:
    """Synchronous :func:`aauthenticate_token`, for views and management commands."""
    return async_to_sync(aauthenticate_token)(token, settings=settings)
