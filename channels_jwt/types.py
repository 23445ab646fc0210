"""The ASGI types, defined once for every module of the package; the client and the claims.

Everything that reads ``scope["client"]`` does it through :func:`client_address` (the rate
limit's key) or :func:`client_label` (log lines).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

Scope = MutableMapping[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: ASGI headers: (lower-cased name, value) byte pairs.
Headers = list[tuple[bytes, bytes]]
#: Verified claims of a token (a read-only mapping once verified).
Claims = Mapping[str, Any]


def read_only(claims: Mapping[str, Any]) -> Claims:
    """A read-only view of ``claims``: a copy, unless it is already such a view.

    The pipeline wraps the verifier's fresh dict once, so the user, ``scope["jwt"]`` and
    the hooks share one view instead of each keeping a copy per connection.
    """
    if type(claims) is MappingProxyType:
        return claims
    return MappingProxyType(dict(claims))


def expires_at(claims: Claims) -> datetime | None:
    """When a token with these claims expires (aware, UTC), or ``None`` without ``exp``."""
    exp = claims.get("exp")
    return None if exp is None else datetime.fromtimestamp(exp, tz=timezone.utc)


def client_address(scope: Mapping[str, Any]) -> str | None:
    """The client's host from the ASGI scope, or ``None`` when the server gives none."""
    client = scope.get("client")
    return str(client[0]) if client else None


def client_label(scope: Mapping[str, Any]) -> str:
    """``host:port`` of the client for a log line (``host`` without a port, ``-`` unknown)."""
    host = client_address(scope)
    if host is None:
        return "-"
    client = scope["client"]
    port = client[1] if len(client) > 1 else None
    return host if port is None else f"{host}:{port}"
