"""Trusted origins (``channels_jwt.origins``): a cookie counts only from the site's own Origin."""

from __future__ import annotations

from typing import Any

import pytest

from channels_jwt import JWTAuthMiddleware
from tests.harness import (
    ALL_SOURCES,
    RecordingApp,
    close_message,
    open_connection,
    rejection,
    token_for,
)

# Cookies count only from a trusted Origin.


@pytest.mark.parametrize(
    ("origin", "extra_settings"),
    [
        pytest.param(b"http://localhost", {}, id="allowed-host"),
        pytest.param(b"https://testserver:8443", {}, id="allowed-host-with-port"),
        pytest.param(
            b"https://app.example.com",
            {"CSRF_TRUSTED_ORIGINS": ["https://app.example.com"]},
            id="csrf-trusted-origin",
        ),
        pytest.param(
            b"https://eu.example.com",
            {"CSRF_TRUSTED_ORIGINS": ["http://eu.example.com", "https://*.example.com"]},
            id="csrf-trusted-wildcard",
        ),
        pytest.param(b"http://localhost", {"DEBUG": True, "ALLOWED_HOSTS": []}, id="debug"),
    ],
)
async def test_cookie_from_trusted_origin_authenticates(
    origin: bytes,
    extra_settings: dict[str, Any],
    user: Any,
    inner: RecordingApp,
    settings: Any,
) -> None:
    for name, value in extra_settings.items():
        setattr(settings, name, value)
    app = JWTAuthMiddleware(inner, settings=ALL_SOURCES)
    headers = [(b"origin", origin), (b"cookie", f"jwt={token_for(user)}".encode())]
    communicator, outcome = await open_connection(app, headers=headers)
    assert outcome == (True, None)
    assert inner.scopes[0]["jwt"].source == "cookie"
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("origin", "extra_settings"),
    [
        pytest.param(None, {}, id="no-origin"),
        pytest.param(b"https://evil.example", {}, id="foreign"),
        pytest.param(b"null", {}, id="null"),
        pytest.param(b"http://[::1", {}, id="unparsable"),
        pytest.param(b"ftp://localhost", {}, id="not-http"),
        pytest.param(b"https://evil.example", {"ALLOWED_HOSTS": ["*"]}, id="star-host"),
        pytest.param(
            b"https://evil.example",
            {"CSRF_TRUSTED_ORIGINS": ["https://app.example.com"]},
            id="not-csrf-trusted",
        ),
        pytest.param(
            b"http://app.example.com",
            {"CSRF_TRUSTED_ORIGINS": ["https://app.example.com"]},
            id="csrf-trusted-other-scheme",
        ),
        pytest.param(b"http://localhost", {"DEBUG": False, "ALLOWED_HOSTS": []}, id="no-hosts"),
    ],
)
async def test_cookie_from_untrusted_origin_counts_as_absent(
    origin: bytes | None,
    extra_settings: dict[str, Any],
    user: Any,
    inner: RecordingApp,
    settings: Any,
) -> None:
    for name, value in extra_settings.items():
        setattr(settings, name, value)
    app = JWTAuthMiddleware(inner, settings=ALL_SOURCES)
    headers = [(b"cookie", f"jwt={token_for(user)}".encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    _, close = await rejection(app, headers=headers)
    assert close == close_message(4401, "token_missing")
