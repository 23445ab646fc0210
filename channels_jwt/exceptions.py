"""Close codes and the exception tree.

Every failure the middleware can report is a :class:`ChannelsJWTError`. Failures caused by the
credential or the user are :class:`AuthenticationFailed` subclasses; failures of the
infrastructure (keys, user lookup) sit directly under the root, so ``except
AuthenticationFailed`` never swallows an outage. Each class carries the close code and the
reason string the client receives.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes sent when authentication fails ("4000 + HTTP status")."""

    TOKEN_MALFORMED = 4400
    UNAUTHENTICATED = 4401
    USER_REJECTED = 4403
    AUTH_TIMEOUT = 4408
    RATE_LIMITED = 4429
    TOKEN_EXPIRED = 4440
    TOKEN_REVOKED = 4441
    AUTH_UNAVAILABLE = 4503


class ChannelsJWTError(Exception):
    """Root of every error raised by channels_jwt.

    ``close_code`` and ``reason`` say what the client is told. The message (``str(exc)``) is a
    short description for server logs; it never contains the token.
    """

    close_code: CloseCode = CloseCode.AUTH_UNAVAILABLE
    reason: str = "auth_unavailable"
    #: The status of a refusal in ``REJECT_MODE="deny"`` (an HTTP response to the upgrade).
    http_status: int = 503

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.reason)


class AuthenticationFailed(ChannelsJWTError):
    """The credential or the user it names was rejected."""

    close_code = CloseCode.UNAUTHENTICATED
    reason = "token_invalid"
    http_status = 401


class TokenMissing(AuthenticationFailed):
    """No credential was presented (and anonymous connections are not allowed)."""

    close_code = CloseCode.UNAUTHENTICATED
    reason = "token_missing"


class TokenMalformed(AuthenticationFailed):
    """The credential is not a compact JWS, is too large, or is ambiguous."""

    close_code = CloseCode.TOKEN_MALFORMED
    reason = "token_malformed"


class TokenInvalid(AuthenticationFailed):
    """Bad signature, algorithm, key, claims or token type."""

    close_code = CloseCode.UNAUTHENTICATED
    reason = "token_invalid"


class TokenExpired(AuthenticationFailed):
    """The token's ``exp`` (plus leeway) has passed."""

    close_code = CloseCode.TOKEN_EXPIRED
    reason = "token_expired"


class TokenRevoked(AuthenticationFailed):
    """The token (by ``jti``) or its user was revoked."""

    close_code = CloseCode.TOKEN_REVOKED
    reason = "token_revoked"


class UserRejected(AuthenticationFailed):
    """The user does not exist or is inactive (one answer for both: no enumeration oracle)."""

    close_code = CloseCode.USER_REJECTED
    reason = "user_rejected"
    http_status = 403


class AuthTimeout(AuthenticationFailed):
    """The ``"message"`` source: no authentication frame within ``MESSAGE_TIMEOUT_SECONDS``."""

    close_code = CloseCode.AUTH_TIMEOUT
    reason = "auth_timeout"
    http_status = 408


class RateLimited(AuthenticationFailed):
    """Too many failed handshakes from this client address (``RATE_LIMIT``)."""

    close_code = CloseCode.RATE_LIMITED
    reason = "rate_limited"
    http_status = 429


class KeyUnavailable(ChannelsJWTError):
    """No verification key could be obtained (for example the JWKS endpoint is down)."""


class ResolverError(ChannelsJWTError):
    """The user lookup failed for a reason other than the user (for example the DB is down)."""


def _tree(root: type[ChannelsJWTError]) -> list[type[ChannelsJWTError]]:
    return [root, *(cls for child in root.__subclasses__() for cls in _tree(child))]


#: Every reason string a connection can be closed with (the keys ``CLOSE_CODES`` accepts).
REASONS = frozenset(cls.reason for cls in _tree(ChannelsJWTError))
#: The HTTP status that refuses an upgrade in ``REJECT_MODE="deny"``, by close code.
HTTP_STATUS = {int(cls.close_code): cls.http_status for cls in _tree(ChannelsJWTError)}
