"""The object an authenticated connection finds in ``scope["jwt"]``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any


class JWTConnection:
    """What the middleware verified for this connection (read-only).

    ``claims`` is the verified payload, ``source`` where the token came from
    (``"subprotocol"``, ``"query"``, ``"header"`` or ``"cookie"``) and ``expires_at`` the
    token's ``exp`` as an aware UTC ``datetime`` (``None`` if the token has no ``exp``).
    """

    __slots__ = ("_claims", "_source")

    def __init__(self, claims: Mapping[str, Any], source: str) -> None:
        self._claims: Mapping[str, Any] = MappingProxyType(dict(claims))
        self._source = source

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
        exp = self._claims.get("exp")
        return None if exp is None else datetime.fromtimestamp(exp, tz=timezone.utc)

    def __repr__(self) -> str:
        return f"<JWTConnection source={self._source!r} expires_at={self.expires_at}>"
