"""JWT authentication for Django Channels WebSockets.

Importing this package touches neither models nor settings, so ``asgi.py`` may import it
before ``django.setup()``.
"""

from __future__ import annotations

from channels_jwt.exceptions import (
    AuthenticationFailed,
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
    "adisconnect_user",
    "arevoke_token",
    "disconnect_user",
    "issue_token",
    "revoke_token",
]
__version__ = "0.1.0"
