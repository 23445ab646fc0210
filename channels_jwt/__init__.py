"""JWT authentication for Django Channels WebSockets.

Importing this package touches neither models nor settings, so ``asgi.py`` may import it
before ``django.setup()``.
"""

from __future__ import annotations

from channels_jwt.authentication import (
    AuthenticatedToken,
    aauthenticate_token,
    authenticate_token,
)
from channels_jwt.exceptions import (
    AuthenticationFailed,
    AuthTimeout,
    ChannelsJWTError,
    CloseCode,
    KeyUnavailable,
    RateLimited,
    ResolverError,
    TokenExpired,
    TokenInvalid,
    TokenMalformed,
    TokenMissing,
    TokenRevoked,
    UserRejected,
)
from channels_jwt.middleware import JWTAuthMiddleware, JWTAuthMiddlewareStack
from channels_jwt.revocation import adisconnect_user, arevoke_token, disconnect_user, revoke_token
from channels_jwt.tokens import issue_token

__all__ = [
    "AuthTimeout",
    "AuthenticatedToken",
    "AuthenticationFailed",
    "ChannelsJWTError",
    "CloseCode",
    "JWTAuthMiddleware",
    "JWTAuthMiddlewareStack",
    "KeyUnavailable",
    "RateLimited",
    "ResolverError",
    "TokenExpired",
    "TokenInvalid",
    "TokenMalformed",
    "TokenMissing",
    "TokenRevoked",
    "UserRejected",
    "aauthenticate_token",
    "adisconnect_user",
    "arevoke_token",
    "authenticate_token",
    "disconnect_user",
    "issue_token",
    "revoke_token",
]
__version__ = "0.1.0"
