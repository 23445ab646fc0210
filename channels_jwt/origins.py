"""Whether a WebSocket handshake comes from the site's own page (for cookie credentials only).

A browser sends its cookies with a handshake whatever page opens the socket, and SameSite
does not help between sibling subdomains (they are the same *site*), so a cookie credential
is honoured only when the ``Origin`` header is:

- the request's own origin: the scheme of the scope (``wss`` is ``https``, ``ws`` or none is
  ``http``) with the host and port of the ``Host`` header, that host allowed by
  ``ALLOWED_HOSTS`` (as Django's ``HttpRequest.get_host`` allows it, including the local
  names when ``DEBUG`` is on and the list is empty). Default ports are left out before the
  comparison, as browsers leave them out of ``Origin``. Another port, plain ``http`` or
  another allowed host is another origin; or
- an origin in ``CSRF_TRUSTED_ORIGINS``, matched as Django's CSRF check matches it: exactly,
  or for a ``scheme://*.domain[:port]`` entry any subdomain of ``domain`` (and ``domain``
  itself) with that scheme and port.

A ``"*"`` in ``ALLOWED_HOSTS`` accepts any ``Host``, as in Django; the ``Origin`` must still
be the origin of that ``Host``, so a foreign page never qualifies. Only the ``Host`` header
and the scope's scheme count: ``X-Forwarded-Host``, ``X-Forwarded-Proto`` and
``SECURE_PROXY_SSL_HEADER`` do not (behind a TLS-terminating proxy that passes ``ws``, list
the site's ``https`` origin in ``CSRF_TRUSTED_ORIGINS``, or have the server take the scheme
from the proxy). A missing or repeated ``Host`` or ``Origin`` header trusts nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

#: The port an origin of each scheme has when it names none.
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_trusted_origin(scheme: str | None, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a handshake's ``Origin`` is its own origin or in ``CSRF_TRUSTED_ORIGINS``.

    ``scheme`` is ``scope["scheme"]`` and ``headers`` the handshake's headers, of which
    ``Host`` and ``Origin`` are read.
    """
    fields = list(headers)
    origin = _only_header(fields, b"origin")
    if not origin:
        return False
    host = _only_header(fields, b"host")
    return _in_csrf_trusted_origins(origin) or _is_own_origin(origin, scheme, host)


def origin_of(scheme: str | None, host: str) -> str | None:
    """The origin of a page served over ``scheme`` at ``host`` (a ``Host`` header value).

    ``scheme`` is a scope's: ``"wss"`` (or ``"https"``) is ``https``, anything else ``http``.
    The origin is serialized as browsers send it (``https://example.com``, a default port left
    out); ``None`` when ``host`` is not a valid host.
    """
    return _serialized("https" if scheme in ("wss", "https") else "http", host)


def _is_own_origin(origin: str, scheme: str | None, host: str | None) -> bool:
    """Whether ``origin`` is the origin of ``host`` over ``scheme``, ``host`` being allowed."""
    if host is None:
        return False
    own = origin_of(scheme, host)
    domain, _ = split_domain_port(host)
    if own is None or not validate_host(domain, _allowed_hosts()):
        return False
    origin_scheme, _, netloc = origin.partition("://")
    return origin_scheme in DEFAULT_PORTS and _serialized(origin_scheme, netloc) == own


def _serialized(scheme: str, netloc: str) -> str | None:
    """``scheme://host[:port]``, lowercased, without the scheme's default port."""
    domain, port = split_domain_port(netloc)
    if not domain:
        return None
    host = netloc.lower()
    if port:
        host = host[: -len(port) - 1]
        if int(port) != DEFAULT_PORTS[scheme]:
            host = f"{host}:{int(port)}"
    return f"{scheme}://{host}"


def _allowed_hosts() -> list[str]:
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        return [".localhost", "127.0.0.1", "[::1]"]
    return allowed


def _in_csrf_trusted_origins(origin: str) -> bool:
    """Django's CSRF ``Origin`` match: an exact entry, or a ``*.`` entry's subdomains."""
    if origin in [trusted for trusted in settings.CSRF_TRUSTED_ORIGINS if "*" not in trusted]:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return any(is_same_domain(parts.netloc, pattern) for pattern in _wildcards(parts.scheme))


def _wildcards(scheme: str) -> Iterator[str]:
    """The ``.domain[:port]`` of each ``scheme://*.domain[:port]`` in ``CSRF_TRUSTED_ORIGINS``.

    An entry that does not parse is skipped (Django's CSRF check would fail on it).
    """
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in trusted:
            continue
        try:
            parts = urlsplit(trusted)
        except ValueError:
            continue
        if parts.scheme == scheme:
            yield parts.netloc.lstrip("*")


def _only_header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    """The value of the one ``wanted`` header; ``None`` if there is none, or more than one."""
    values = [value for name, value in headers if name.lower() == wanted]
    return values[0].decode("latin-1") if len(values) == 1 else None
