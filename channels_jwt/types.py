"""The ASGI types, defined once for every module of the package, and the claims view."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
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
