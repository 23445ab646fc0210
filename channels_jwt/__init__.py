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
    ResolverError,
    TokenExpired,
    TokenInvalid,
    TokenMalformed,
    TokenMissing,
    TokenRevoked,
    UserRejected,
)
from channels_jwt.middleware import JWTAuthMiddleware, JWTAuthMiddlewareStack
from channels_jwt.tokens import issue_token

__all__ = [
    "AuthenticationFailed",
    "ChannelsJWTError",
    "CloseCode",
    "JWTAuthMiddleware",
    "JWTAuthMiddlewareStack",
    "KeyUnavailable",
    "ResolverError",
    "TokenExpired",
    "TokenInvalid",
    "TokenMalformed",
    "TokenMissing",
    "TokenRevoked",
    "UserRejected",
    "issue_token",
]
__version__ = "0.1.0"
