"""Whether a WebSocket ``Origin`` is the site's own (for cookie credentials only).

A cookie is sent by the browser whatever page opens the socket, so a cookie credential is
honoured only when the ``Origin`` header names this site: a host in ``ALLOWED_HOSTS`` or an
origin in ``CSRF_TRUSTED_ORIGINS``. A bare ``"*"`` in ``ALLOWED_HOSTS`` is deliberately not
taken as "every origin is trusted"; list the origins in ``CSRF_TRUSTED_ORIGINS`` instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def is_trusted_origin(origin: str | None) -> bool:
    """Whether ``origin`` (an ``Origin`` header value) belongs to this site."""
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    host, _ = split_domain_port(parts.netloc)
    if parts.scheme not in ("http", "https") or not host:
        return False
    if _in_csrf_trusted_origins(parts.scheme, parts.netloc):
        return True
    allowed_hosts = [host for host in _allowed_hosts() if host != "*"]
    return validate_host(host, allowed_hosts)


def _allowed_hosts() -> list[str]:
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        return [".localhost", "127.0.0.1", "[::1]"]
    return allowed


def _in_csrf_trusted_origins(scheme: str, netloc: str) -> bool:
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", ()):
        trusted_parts = urlsplit(trusted)
        if trusted_parts.scheme != scheme:
            continue
        trusted_netloc = trusted_parts.netloc
        if trusted_netloc == netloc:
            return True
        if trusted_netloc.startswith("*.") and netloc.endswith(trusted_netloc[1:]):
            return True
    return False
