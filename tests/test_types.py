"""The claims view (``channels_jwt.types.read_only``): ``scope["jwt"].claims`` cannot be changed."""

from __future__ import annotations

from typing import Any

import pytest

from channels_jwt import JWTAuthMiddleware
from tests.harness import (
    RecordingApp,
    open_connection,
    token_for,
)


async def test_jwt_claims_are_read_only(user: Any, inner: RecordingApp) -> None:
    app = JWTAuthMiddleware(inner)
    communicator, _ = await open_connection(app, subprotocols=["access_token", token_for(user)])
    with pytest.raises(TypeError):
        inner.scopes[0]["jwt"].claims["user_id"] = "2"  # type: ignore[index]
    await communicator.disconnect()
