"""``TokenRefreshMixin``: in-band token refresh for JSON consumers.

A client whose token is about to expire sends ``{"type": "token.refresh", "token": "<jwt>"}``
over the open socket instead of reconnecting. The mixin verifies it with
``scope["jwt"].refresh()`` and answers ``{"type": "token.refreshed", "expires_at": <exp>}``;
a refused token closes the socket with that failure's close code (4440, 4401, 4403, 4441;
4503 when the check itself failed), and a frame whose ``token`` is not a string with 4400;
``CLOSE_CODES`` overrides apply to both.
Every other frame reaches your ``receive_json`` as usual.
"""

from __future__ import annotations

import json
from typing import Any

from channels_jwt.exceptions import ChannelsJWTError, TokenMalformed

REFRESH_TYPE = "token.refresh"
REFRESHED_TYPE = "token.refreshed"


class TokenRefreshMixin:
    """Put before ``AsyncJsonWebsocketConsumer`` in the bases of your consumer."""

    scope: dict[str, Any]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Handle refresh frames; hand every other frame to the consumer."""
        if text_data and REFRESH_TYPE in text_data:
            try:
                content = json.loads(text_data)
            except ValueError:
                content = None
            if isinstance(content, dict) and content.get("type") == REFRESH_TYPE:
                await self.refresh_token(content.get("token"))
                return
        await super().receive(text_data=text_data, bytes_data=bytes_data)  # type: ignore[misc]

    async def refresh_token(self, token: Any) -> None:
        """Refresh the connection's token; close with the failure's code if refused."""
        connection = self.scope.get("jwt")
        if connection is None:
            # An anonymous connection has no token to renew (nor a middleware's CLOSE_CODES).
            await self.close(code=int(TokenMalformed.close_code))  # type: ignore[attr-defined]
            return
        try:
            if not isinstance(token, str):
                raise TokenMalformed("refresh frame without a token string")
            await connection.refresh(token)
        except ChannelsJWTError as exc:
            await self.close(code=connection.close_code_for(exc))  # type: ignore[attr-defined]
            return
        await self.send_json(  # type: ignore[attr-defined]
            {"type": REFRESHED_TYPE, "expires_at": connection.claims.get("exp")}
        )
