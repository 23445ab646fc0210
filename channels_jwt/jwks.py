"""Verification keys from an identity provider's JWKS endpoint (``JWK_URL``).

:func:`fetch_jwks` fetches the key set (no redirects, at most :data:`MAX_JWKS_BYTES`, the
whole request within ``JWKS_TIMEOUT_SECONDS``) and PyJWT's ``PyJWK`` parses its keys. Around
them, :class:`JWKSKeys` keeps the last key set that was fetched successfully, so that:

- handshakes never wait on the network for a key they already know: lookups read that
  snapshot on the event loop, and a snapshot older than ``JWKS_CACHE_SECONDS`` is refreshed in
  the background while it keeps serving;
- fetches run in a single worker thread of their own, never on the event loop and never in
  Channels' database thread, so a slow endpoint delays nobody but the handshakes that need a
  key nobody has yet;
- a token with an unknown ``kid`` triggers one refetch, and unknown ``kid`` floods cause at
  most one fetch per :data:`REFETCH_COOLDOWN_SECONDS`; handshakes that need a key while a
  fetch is under way wait for that fetch instead of starting another;
- after a failed fetch, the next attempt waits :data:`RETRY_AFTER_FAILURE_SECONDS`;
- while the endpoint is down, keys already known keep working; a key that cannot be obtained
  is a :class:`KeyUnavailable` (4503), never a rejection of a token that may be fine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException, HTTPResponse, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit
from urllib.request import (
    AbstractHTTPHandler,
    OpenerDirector,
    ProxyHandler,
    Request,
    UnknownHandler,
)

from jwt import PyJWK
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError

from channels_jwt.exceptions import KeyUnavailable
from channels_jwt.keys import PublicKey, key_fits, load_public_key

logger = logging.getLogger("channels_jwt")

#: Minimum time between two fetches caused by unknown ``kid`` values.
REFETCH_COOLDOWN_SECONDS = 30.0
#: Minimum time between two attempts after a failed fetch.
RETRY_AFTER_FAILURE_SECONDS = 5.0
#: Key types a JWKS may contribute (``oct`` shared secrets never count).
PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
#: Largest key set read (real ones are a few KiB, tens with certificate chains).
MAX_JWKS_BYTES = 1024 * 1024


def is_allowed_jwks_url(url: Any) -> bool:
    """Whether ``url`` may serve keys: https, or http to a loopback host only."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class JWK:
    """One usable public key from the set, with the algorithm it is bound to (if any)."""

    kid: str | None
    key: PublicKey
    algorithm: str | None

    def verifies(self, algorithm: str) -> bool:
        """Whether this key may verify a token signed with ``algorithm``."""
        return (self.algorithm in (None, algorithm)) and key_fits(algorithm, self.key)


def usable_keys(jwk_set: Any) -> tuple[JWK, ...]:
    """The signing keys of a JWKS document that channels_jwt can use.

    Keys meant for encryption (``use`` other than ``sig``, or ``key_ops`` without ``verify``),
    symmetric or private keys, keys PyJWT cannot parse and RSA keys under 2048 bits are left
    out; the rest of the set still counts.
    """
    entries = jwk_set.get("keys") if isinstance(jwk_set, Mapping) else None
    usable: list[JWK] = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        # RFC 7517 section 4.3: when present, key_ops lists what the key is for.
        key_ops = entry.get("key_ops", ["verify"])
        if not isinstance(key_ops, list) or "verify" not in key_ops:
            continue
        if not isinstance(entry.get("kty"), str) or entry["kty"] not in PUBLIC_KEY_TYPES:
            continue
        kid = entry.get("kid")
        alg = entry.get("alg")
        try:
            key = load_public_key(PyJWK(entry).key)
        except Exception:  # noqa: S112 (one unusable entry, e.g. an unsupported alg, is skipped)
            continue
        usable.append(
            JWK(
                kid if isinstance(kid, str) else None,
                key,
                alg if isinstance(alg, str) else None,
            )
        )
    return tuple(usable)


def fetch_jwks(url: str, timeout: float) -> Any:
    """The JSON document at ``url``, the whole request within ``timeout`` seconds.

    Fetched the way PyJWT's ``PyJWKClient`` fetches (urllib: certificates verified, proxies
    from the environment, no redirects, http and https only), which cannot do it itself: its
    ``timeout`` bounds each socket operation, not the request, so an endpoint sending a byte
    every so often kept a fetch going for as long as it liked, and it has no hook to bound the
    whole. Here a :class:`_Deadline` shuts the connection down when the time is up, whatever
    the request is waiting for (connection, TLS handshake, headers, body). Name resolution
    alone is not bounded (no thread can interrupt it); ``AUTH_TIMEOUT_SECONDS`` still bounds
    the handshakes waiting on it.

    Raises ``PyJWKClientConnectionError`` when the request fails, answers other than 2xx or
    runs out of time, ``PyJWKClientError`` when the body is larger than
    :data:`MAX_JWKS_BYTES`, and ``ValueError`` when it is not JSON.
    """
    deadline = _Deadline(timeout)
    # Handlers for http and https only (any other scheme is an unknown one), and none for
    # redirects or errors: every answer comes back as it is, to be checked below.
    opener = OpenerDirector()
    for handler in (ProxyHandler(), UnknownHandler(), _Handler(deadline)):
        opener.add_handler(handler)
    request = Request(url, headers={"Accept": "application/json"})  # noqa: S310 (see above)
    try:
        with opener.open(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise PyJWKClientConnectionError(f"JWKS endpoint answered HTTP {response.status}")
            body = response.read(MAX_JWKS_BYTES + 1)
    except (OSError, HTTPException) as exc:  # also timeouts, resets, TLS errors, URLError
        raise PyJWKClientConnectionError(f"JWKS request failed: {exc!r}") from exc
    finally:
        late = deadline.close()
    if late:  # a body cut short by the deadline may read as if it were complete
        raise PyJWKClientConnectionError(f"JWKS request took more than {timeout} s")
    if len(body) > MAX_JWKS_BYTES:
        raise PyJWKClientError(f"JWKS document larger than {MAX_JWKS_BYTES} bytes")
    return json.loads(body)


class _Deadline:
    """Shuts a request's connections down when its time is up, whatever they are waiting for.

    As each connection opens, its descriptor is duplicated (TLS detaches the socket object it
    wraps; a shutdown through any descriptor reaches the connection) and a timer is set to
    shut it down at the deadline: a read blocked then returns at once, at end of file.
    """

    def __init__(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._duplicates: list[socket.socket] = []
        self._timers: list[threading.Timer] = []

    def connection(self, connection_class: type[HTTPConnection]) -> Callable[..., HTTPConnection]:
        """A factory of ``connection_class`` connections for urllib, watched by this deadline."""

        def connection(host: str, **kwargs: Any) -> HTTPConnection:
            watched = connection_class(host, **kwargs)
            # http.client opens its socket with this (CPython 3.10 to 3.13 alike), before any
            # proxy tunnel or TLS handshake.
            watched._create_connection = self._create_connection  # type: ignore[attr-defined]
            return watched

        return connection

    def close(self) -> bool:
        """Cancel the timers and close the duplicates; whether the time is up."""
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            for duplicate in self._duplicates:
                duplicate.close()
        return time.monotonic() >= self._ends

    def _create_connection(
        self,
        address: tuple[str, int],
        timeout: float | None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        sock = socket.create_connection(address, timeout, source_address)
        with self._lock:
            duplicate = sock.dup()
            timer = threading.Timer(self._ends - time.monotonic(), self._shut, (duplicate,))
            timer.daemon = True
            timer.start()
            self._duplicates.append(duplicate)
            self._timers.append(timer)
        return sock

    def _shut(self, duplicate: socket.socket) -> None:
        with self._lock, contextlib.suppress(OSError):  # already closed: the request is over
            duplicate.shutdown(socket.SHUT_RDWR)


class _Handler(AbstractHTTPHandler):
    """urllib's http and https handlers, over connections watched by a :class:`_Deadline`."""

    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: Request) -> HTTPResponse:
        return self.do_open(self._deadline.connection(HTTPConnection), req)

    def https_open(self, req: Request) -> HTTPResponse:
        return self.do_open(self._deadline.connection(HTTPSConnection), req)

    http_request = https_request = AbstractHTTPHandler.do_request_


class JWKSKeys:
    """A JWKS endpoint as a source of verification keys (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        timeout: float,
        cooldown: float = REFETCH_COOLDOWN_SECONDS,
        retry_after_failure: float = RETRY_AFTER_FAILURE_SECONDS,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.cooldown = cooldown
        self.retry_after_failure = retry_after_failure
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="channels-jwt-jwks")
        weakref.finalize(self, self._executor.shutdown, wait=False)
        self._keys: tuple[JWK, ...] | None = None
        self._fresh_until = 0.0
        self._last_attempt = -math.inf
        self._last_attempt_failed = False
        self._in_flight: Future[None] | None = None

    async def candidates(self, algorithm: str, kid: str | None) -> list[PublicKey]:
        """The keys that may verify a token signed with ``algorithm`` and naming ``kid``.

        Raises :class:`KeyUnavailable` when the key set cannot be obtained and no known key
        answers for ``kid``.
        """
        keys = self._keys
        known = keys is not None and bool(_named(keys, kid))
        if keys is not None and time.monotonic() >= self._fresh_until:
            self._start_fetch(unknown_kid=False)  # stale: refresh, but keep serving
        if not known:
            fetch = self._start_fetch(unknown_kid=keys is not None)
            if fetch is not None:
                await asyncio.wrap_future(fetch)
            keys = self._keys
        if keys is None or (not _named(keys, kid) and self._last_attempt_failed):
            raise KeyUnavailable(f"JWKS at {self.url} unavailable and no key known for the token")
        return [jwk.key for jwk in _named(keys, kid) if jwk.verifies(algorithm)]

    def _start_fetch(self, *, unknown_kid: bool) -> Future[None] | None:
        """The fetch in flight, or a new one if one may start now (on the event loop only)."""
        if self._in_flight is not None and not self._in_flight.done():
            return self._in_flight
        since = time.monotonic() - self._last_attempt
        if self._last_attempt_failed:
            allowed = since >= self.retry_after_failure
        else:
            allowed = not unknown_kid or since >= self.cooldown
        if not allowed:
            return None
        self._last_attempt = time.monotonic()
        self._in_flight = self._executor.submit(self._fetch)
        return self._in_flight

    def _fetch(self) -> None:
        """Fetch and parse the key set (worker thread); a failure keeps the known keys."""
        try:
            document = fetch_jwks(self.url, self.timeout)
            if not isinstance(document, Mapping):
                raise PyJWKClientError("The JWKS endpoint did not return a JSON object")
            keys = usable_keys(document)
        except Exception as exc:
            self._last_attempt_failed = True
            logger.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
            return
        self._keys = keys
        self._fresh_until = time.monotonic() + self.cache_seconds
        self._last_attempt_failed = False


def _named(keys: tuple[JWK, ...], kid: str | None) -> tuple[JWK, ...]:
    if kid is None:
        return keys
    return tuple(jwk for jwk in keys if jwk.kid == kid)
