"""Trusted origins (``channels_jwt.origins``): a cookie counts only from the request's own origin.

One table of handshakes, judged twice: by :func:`is_trusted_origin` itself, and through
``JWTAuthMiddleware`` with the cookie source (a trusted cookie authenticates; any other is
treated as absent: 4401 ``token_missing``). The request's own origin is the scope's scheme
(``ws`` is ``http``, ``wss`` is ``https``) with the ``Host`` header's host and port, that host
allowed by ``ALLOWED_HOSTS``; ``CSRF_TRUSTED_ORIGINS`` is matched as Django's CSRF check does.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware
from channels_jwt.origins import is_trusted_origin, origin_of
from tests.harness import (
    RecordingApp,
    accepted_then_closed,
    close_message,
    token_for,
    websocket_scope,
)

#: The project every case starts from: tenants on subdomains of example.com.
SITE = {"ALLOWED_HOSTS": [".example.com"], "CSRF_TRUSTED_ORIGINS": [], "DEBUG": False}
#: The middleware's settings: the cookie is the only source, users come from the token.
COOKIE_ONLY = {
    "TOKEN_SOURCES": ["cookie"],
    "COOKIE_NAME": "jwt",
    "USER_RESOLVER": "channels_jwt.users.token_user",
}


def handshake_headers(host: str | None, origin: str | None) -> list[tuple[bytes, bytes]]:
    """A ``Host`` and an ``Origin`` header (``None``: not sent)."""
    headers = []
    if host is not None:
        headers.append((b"host", host.encode("latin-1")))
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    return headers


def case(
    case_id: str,
    scheme: str | None,
    host: str | None,
    origin: str | None,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    **settings: Any,
) -> Any:
    """One handshake: ``scope["scheme"]``, its headers, and the Django settings it meets."""
    given = handshake_headers(host, origin) if headers is None else headers
    return pytest.param(scheme, given, {**SITE, **settings}, id=case_id)


TRUSTED = [
    case("same-origin-ws", "ws", "a.example.com", "http://a.example.com"),
    case("same-origin-wss", "wss", "a.example.com", "https://a.example.com"),
    case("same-origin-with-port", "ws", "a.example.com:8000", "http://a.example.com:8000"),
    case("no-scheme-is-ws", None, "a.example.com", "http://a.example.com"),
    case("https-scheme-is-wss", "https", "a.example.com", "https://a.example.com"),
    case("default-port-443-in-host", "wss", "a.example.com:443", "https://a.example.com"),
    case("default-port-80-in-host", "ws", "a.example.com:80", "http://a.example.com"),
    case("default-port-443-in-origin", "wss", "a.example.com", "https://a.example.com:443"),
    case("host-in-capitals", "ws", "A.Example.COM", "http://a.example.com"),
    case("ipv6", "ws", "[::1]:8000", "http://[::1]:8000", ALLOWED_HOSTS=["[::1]"]),
    case("ipv6-default-port", "wss", "[::1]:443", "https://[::1]", ALLOWED_HOSTS=["[::1]"]),
    case(
        "debug-without-allowed-hosts",
        "ws",
        "app.localhost:8000",
        "http://app.localhost:8000",
        DEBUG=True,
        ALLOWED_HOSTS=[],
    ),
    case(
        "star-host-same-origin", "ws", "anything.test", "http://anything.test", ALLOWED_HOSTS=["*"]
    ),
    case(
        "csrf-exact",
        "wss",
        "a.example.com",
        "https://app.other.com",
        CSRF_TRUSTED_ORIGINS=["https://app.other.com"],
    ),
    case(
        "csrf-exact-with-port",
        "wss",
        "a.example.com",
        "https://app.other.com:8443",
        CSRF_TRUSTED_ORIGINS=["https://app.other.com:8443"],
    ),
    case(
        "csrf-wildcard",
        "wss",
        "a.example.com",
        "https://eu.other.com",
        CSRF_TRUSTED_ORIGINS=["http://eu.other.com", "https://*.other.com"],
    ),
    case(
        "csrf-wildcard-with-port",
        "wss",
        "a.example.com",
        "https://eu.other.com:8443",
        CSRF_TRUSTED_ORIGINS=["https://*.other.com:8443"],
    ),
    case(
        "csrf-wildcard-bare-domain",
        "wss",
        "a.example.com",
        "https://other.com",
        CSRF_TRUSTED_ORIGINS=["https://*.other.com"],
    ),
    case(
        "csrf-trusted-without-host",
        "wss",
        None,
        "https://app.other.com",
        CSRF_TRUSTED_ORIGINS=["https://app.other.com"],
    ),
    case(
        "tls-proxy-origin-in-csrf-trusted",
        "ws",
        "a.example.com",
        "https://a.example.com",
        CSRF_TRUSTED_ORIGINS=["https://a.example.com"],
    ),
]

UNTRUSTED = [
    case("other-port", "ws", "a.example.com:8000", "http://a.example.com:9000"),
    case("port-beside-default", "ws", "a.example.com", "http://a.example.com:8080"),
    case("default-port-vs-other", "wss", "a.example.com:443", "https://a.example.com:8443"),
    case("plain-http-page-on-wss", "wss", "a.example.com", "http://a.example.com"),
    case("https-page-on-ws", "ws", "a.example.com", "https://a.example.com"),
    case("sibling-subdomain", "wss", "a.example.com", "https://b.example.com"),
    case("parent-domain", "wss", "a.example.com", "https://example.com"),
    case("host-not-allowed", "ws", "evil.test", "http://evil.test"),
    case("host-not-allowed-origin-allowed", "ws", "evil.test", "http://a.example.com"),
    case("host-malformed", "ws", "a.example.com:80:80", "http://a.example.com"),
    case("host-with-userinfo", "ws", "u@a.example.com", "http://a.example.com"),
    case("no-host", "ws", None, "http://a.example.com"),
    case(
        "two-host-headers",
        "ws",
        None,
        None,
        headers=[
            (b"host", b"a.example.com"),
            (b"host", b"a.example.com"),
            (b"origin", b"http://a.example.com"),
        ],
    ),
    case(
        "two-origin-headers",
        "ws",
        None,
        None,
        headers=[
            (b"host", b"a.example.com"),
            (b"origin", b"http://a.example.com"),
            (b"origin", b"http://a.example.com"),
        ],
    ),
    case("no-origin", "ws", "a.example.com", None),
    case("null-origin", "ws", "a.example.com", "null"),
    case("empty-origin", "ws", "a.example.com", ""),
    case("origin-with-path", "ws", "a.example.com", "http://a.example.com/"),
    case("origin-with-userinfo", "ws", "a.example.com", "http://u@a.example.com"),
    case("origin-unparsable", "ws", "[::1]", "http://[::1", ALLOWED_HOSTS=["[::1]"]),
    case("origin-not-http", "ws", "a.example.com", "ftp://a.example.com"),
    case("ipv6-other-port", "ws", "[::1]:8000", "http://[::1]:9000", ALLOWED_HOSTS=["[::1]"]),
    case(
        "ipv6-other-address",
        "ws",
        "[::1]:8000",
        "http://[::2]:8000",
        ALLOWED_HOSTS=["[::1]", "[::2]"],
    ),
    case(
        "star-host-foreign-origin",
        "ws",
        "a.example.com",
        "http://evil.test",
        ALLOWED_HOSTS=["*"],
    ),
    case(
        "debug-without-allowed-hosts-other-host",
        "ws",
        "a.example.com",
        "http://a.example.com",
        DEBUG=True,
        ALLOWED_HOSTS=[],
    ),
    case("no-allowed-hosts", "ws", "localhost", "http://localhost", ALLOWED_HOSTS=[]),
    case(
        "csrf-exact-other-port",
        "wss",
        "a.example.com",
        "https://app.other.com:8443",
        CSRF_TRUSTED_ORIGINS=["https://app.other.com"],
    ),
    case(
        "csrf-exact-other-scheme",
        "wss",
        "a.example.com",
        "http://app.other.com",
        CSRF_TRUSTED_ORIGINS=["https://app.other.com"],
    ),
    case(
        "csrf-wildcard-other-port",
        "wss",
        "a.example.com",
        "https://eu.other.com:8443",
        CSRF_TRUSTED_ORIGINS=["https://*.other.com"],
    ),
    case(
        "csrf-wildcard-other-scheme",
        "wss",
        "a.example.com",
        "http://eu.other.com",
        CSRF_TRUSTED_ORIGINS=["https://*.other.com"],
    ),
    case(
        "csrf-wildcard-lookalike",
        "wss",
        "a.example.com",
        "https://evilother.com",
        CSRF_TRUSTED_ORIGINS=["https://*.other.com"],
    ),
    case("tls-proxy-origin-not-listed", "ws", "a.example.com", "https://a.example.com"),
]


def apply(settings: Any, django_settings: dict[str, Any]) -> None:
    for name, value in django_settings.items():
        setattr(settings, name, value)


# --- the predicate ------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "headers", "django_settings"), TRUSTED)
def test_origin_is_trusted(
    scheme: str | None,
    headers: list[tuple[bytes, bytes]],
    django_settings: dict[str, Any],
    settings: Any,
) -> None:
    apply(settings, django_settings)
    assert is_trusted_origin(scheme, headers) is True


@pytest.mark.parametrize(("scheme", "headers", "django_settings"), UNTRUSTED)
def test_origin_is_not_trusted(
    scheme: str | None,
    headers: list[tuple[bytes, bytes]],
    django_settings: dict[str, Any],
    settings: Any,
) -> None:
    apply(settings, django_settings)
    assert is_trusted_origin(scheme, headers) is False


@pytest.mark.parametrize(
    ("scheme", "host", "origin"),
    [
        pytest.param("ws", "testserver", "http://testserver", id="ws"),
        pytest.param("wss", "testserver", "https://testserver", id="wss"),
        pytest.param(None, "testserver", "http://testserver", id="no-scheme"),
        pytest.param("wss", "Testserver:443", "https://testserver", id="default-port"),
        pytest.param("ws", "testserver:8000", "http://testserver:8000", id="other-port"),
        pytest.param("ws", "[::1]:80", "http://[::1]", id="ipv6"),
        pytest.param("ws", "test server", None, id="malformed"),
    ],
)
def test_origin_of_a_page_served_at_host(scheme: str | None, host: str, origin: str | None) -> None:
    assert origin_of(scheme, host) == origin


# Django's own CSRF check, on the same CSRF_TRUSTED_ORIGINS cases: the same verdicts.


class HTTPSRequest(HttpRequest):
    def _get_scheme(self) -> str:
        return "https"


def csrf_origin_verified(origin: str) -> bool:
    """Django's CSRF Origin check of a POST whose ``Host`` is not this site's."""
    request = HTTPSRequest()
    request.META = {"HTTP_HOST": "not-allowed.test", "HTTP_ORIGIN": origin}
    middleware = CsrfViewMiddleware(lambda request: None)  # type: ignore[arg-type, return-value]
    return middleware._origin_verified(request)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("scheme", "headers", "django_settings"),
    [param for param in TRUSTED + UNTRUSTED if param.values[2]["CSRF_TRUSTED_ORIGINS"]],
)
def test_csrf_trusted_origins_match_as_django_matches_them(
    scheme: str | None, headers: list[tuple[bytes, bytes]], django_settings: dict[str, Any]
) -> None:
    (origin,) = [value.decode() for name, value in headers if name == b"origin"]
    with override_settings(**django_settings):
        assert is_trusted_origin(scheme, [(b"origin", origin.encode())]) is csrf_origin_verified(
            origin
        )


def test_a_wildcard_csrf_trusted_origin_that_does_not_parse_is_skipped(settings: Any) -> None:
    # Django's CSRF check raises on it (for every cross-origin POST); a handshake goes on.
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.[other.com", "https://*.other.com"]
    assert is_trusted_origin("wss", [(b"origin", b"https://eu.other.com")]) is True
    assert is_trusted_origin("wss", [(b"origin", b"https://eu.another.com")]) is False


# --- through the middleware ---------------------------------------------------------------------


def cookie_scope(
    scheme: str | None, headers: list[tuple[bytes, bytes]], token: str
) -> dict[str, Any]:
    """A WebSocket scope with exactly ``headers`` plus the token cookie, over ``scheme``."""
    scope = websocket_scope()
    scope["headers"] = [*headers, (b"cookie", f"theme=dark; jwt={token}".encode())]
    if scheme is None:
        del scope["scheme"]
    else:
        scope["scheme"] = scheme
    return scope


@pytest.mark.parametrize(("scheme", "headers", "django_settings"), TRUSTED)
async def test_cookie_from_a_trusted_origin_authenticates(
    scheme: str | None,
    headers: list[tuple[bytes, bytes]],
    django_settings: dict[str, Any],
    settings: Any,
) -> None:
    apply(settings, django_settings)
    inner = RecordingApp(accept=False)
    token = token_for(7)
    messages = await accepted_then_closed(
        JWTAuthMiddleware(inner, settings=COOKIE_ONLY), cookie_scope(scheme, headers, token)
    )
    assert messages == [{"type": "websocket.close", "code": 4000}]
    (scope,) = inner.scopes
    assert (scope["user"].pk, scope["jwt"].source) == (7, "cookie")
    assert scope["headers"] == [*headers, (b"cookie", b"theme=dark")]


@pytest.mark.parametrize(("scheme", "headers", "django_settings"), UNTRUSTED)
async def test_cookie_from_any_other_origin_counts_as_absent(
    scheme: str | None,
    headers: list[tuple[bytes, bytes]],
    django_settings: dict[str, Any],
    settings: Any,
) -> None:
    apply(settings, django_settings)
    inner = RecordingApp()
    messages = await accepted_then_closed(
        JWTAuthMiddleware(inner, settings=COOKIE_ONLY), cookie_scope(scheme, headers, token_for(7))
    )
    assert messages == [
        {"type": "websocket.accept", "subprotocol": None},
        close_message(4401, "token_missing"),
    ]
    assert not inner.called


@pytest.mark.parametrize(("scheme", "headers", "django_settings"), UNTRUSTED[:8])
async def test_cookie_from_another_origin_is_still_removed(
    scheme: str | None,
    headers: list[tuple[bytes, bytes]],
    django_settings: dict[str, Any],
    settings: Any,
) -> None:
    apply(settings, django_settings)
    inner = RecordingApp(accept=False)
    app = JWTAuthMiddleware(inner, settings={**COOKIE_ONLY, "ALLOW_ANONYMOUS": True})
    await accepted_then_closed(app, cookie_scope(scheme, headers, token_for(7)))
    (scope,) = inner.scopes
    assert (scope["user"].is_anonymous, scope["jwt"]) == (True, None)
    assert scope["headers"] == [*headers, (b"cookie", b"theme=dark")]
