"""``channels_jwt.types``: the client of a scope, and the read-only claims view."""

from __future__ import annotations

from typing import Any

import pytest

from channels_jwt import JWTAuthMiddleware
from channels_jwt.types import client_address, client_label
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


@pytest.mark.parametrize(
    ("scope", "address", "label"),
    [
        pytest.param({"client": ("127.0.0.1", 5000)}, "127.0.0.1", "127.0.0.1:5000", id="ipv4"),
        pytest.param(
            {"client": ["2001:db8::1", 443]}, "2001:db8::1", "2001:db8::1:443", id="ipv6-list"
        ),
        pytest.param({"client": ["unix-peer"]}, "unix-peer", "unix-peer", id="no-port"),
        pytest.param({"client": ("10.0.0.1", None)}, "10.0.0.1", "10.0.0.1", id="port-none"),
        pytest.param({"client": None}, None, "-", id="none"),
        pytest.param({}, None, "-", id="absent"),
    ],
)
def test_client_address_and_label(scope: dict[str, Any], address: str | None, label: str) -> None:
    assert client_address(scope) == address
    assert client_label(scope) == label
