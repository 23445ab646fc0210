"""The one test harness: keys and token factories, scopes, handshake drivers, stand-in hooks.

Plain functions, classes and constants that test modules import; pytest fixtures live in
``conftest.py`` (which builds on these). Each helper has one definition here, with keyword
arguments for what the suites vary: the signing key of a server suite (``token_for(user,
key=SIGNING_KEY)``), a timeout, a client address. The JWKS endpoint and its helpers are in
``jwks_server.py``; the hostile catalogue's token builders in ``catalogue/kit.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.db import connection
from django.dispatch import Signal
from django.test import override_settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from channels_jwt import AuthenticationFailed, ChannelsJWTError, CloseCode
from channels_jwt.checks import check_settings
from channels_jwt.conf import Config, Settings
from channels_jwt.connection import JWTConnection
from channels_jwt.extract import Extraction, extract_token
from channels_jwt.sources import ExtractionRules
from channels_jwt.verify import TokenVerifier

#: The subprotocol a client offers before its token.
MARKER = "access_token"
#: The path the in-process tests connect to.
PATH = "/ws/chat/"
#: The logger every channels-jwt line goes to.
LOGGER = "channels_jwt"
#: The test settings' HMAC key: what ``hs_token`` and ``token_for`` sign with by default.
HS_KEY: str = settings.CHANNELS_JWT["SIGNING_KEY"]
#: An HMAC key long enough for HS256 that the test settings do not trust.
OTHER_KEY = "another-key-that-is-long-enough-for-hs256-0123456789"
#: Settings that take a token from every source (the cookie named ``jwt``).
ALL_SOURCES = {"TOKEN_SOURCES": ["subprotocol", "query", "header", "cookie"], "COOKIE_NAME": "jwt"}


# --- keys and tokens --------------------------------------------------------------------------


def public_pem(private_key: Any) -> str:
    """The PEM (SubjectPublicKeyInfo) text of a private key's public half."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(private_key: Any) -> str:
    """The unencrypted PKCS#8 PEM text of a private key."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class Keys:
    """Asymmetric test keys, generated once per test session."""

    rsa: rsa.RSAPrivateKey
    rsa_other: rsa.RSAPrivateKey
    rsa_small: rsa.RSAPrivateKey
    p256: ec.EllipticCurvePrivateKey
    p384: ec.EllipticCurvePrivateKey
    p521: ec.EllipticCurvePrivateKey
    ed25519: ed25519.Ed25519PrivateKey

    def for_algorithm(self, algorithm: str) -> Any:
        """The private key that signs ``algorithm`` tokens."""
        if algorithm[:2] in ("RS", "PS"):
            return self.rsa
        return {"ES256": self.p256, "ES384": self.p384, "ES512": self.p521}.get(
            algorithm, self.ed25519
        )


def claims_for(user_id: Any = "1", **overrides: Any) -> dict[str, Any]:
    """Valid access-token claims (simplejwt's shape); an override of ``...`` drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": str(user_id),
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not ...}


def hs_token(claims: dict[str, Any], *, key: str = HS_KEY, headers: Any = None) -> str:
    """An HS256 token signed with the test settings' SIGNING_KEY."""
    return jwt.encode(claims, key, algorithm="HS256", headers=headers)


def token_for(
    user: Any = 1, *, key: str = HS_KEY, lifetime: int | None = None, **claims: Any
) -> str:
    """A valid HS256 access token for ``user`` (a user object, or its id).

    ``key`` signs it (a server suite passes its own); ``lifetime`` sets ``iat`` to now and
    ``exp`` that many seconds later; ``claims`` override the rest (``...`` drops a claim).
    """
    user_id = getattr(user, "pk", user)
    if lifetime is not None:
        now = int(time.time())
        claims = {"iat": now, "exp": now + lifetime, **claims}
    return hs_token(claims_for(user_id, **claims), key=key)


def expired_token_for(user: Any = 1, *, key: str = HS_KEY, expired_for: int = 300) -> str:
    """A token for ``user`` whose ``exp`` passed ``expired_for`` seconds ago."""
    now = int(time.time())
    return token_for(user, key=key, iat=now - expired_for - 300, exp=now - expired_for)


def soon(lead: float = 0.3) -> int:
    """An integer ``exp`` between ``lead`` and ``lead + 1`` seconds from now.

    JWT NumericDates are whole seconds here, as most issuers write them; ``lead`` keeps the
    token valid through the handshake.
    """
    return math.ceil(time.time() + lead)


# --- verifiers and system checks --------------------------------------------------------------


def verifier(*, require_jti: bool = False, **overrides: Any) -> TokenVerifier:
    """A verifier built from the test settings plus ``overrides`` (``CHANNELS_JWT`` keys).

    The rules of the system checks are not applied: this is the verifier's own defence.
    """
    return TokenVerifier.from_config(
        Config.from_settings(Settings(overrides)), require_jti=require_jti
    )


def rs_verifier(keys: Keys, **overrides: Any) -> TokenVerifier:
    """An RS256 verifier trusting ``keys.rsa``."""
    overrides.setdefault("VERIFYING_KEY", public_pem(keys.rsa))
    return verifier(ALGORITHMS=["RS256"], **overrides)


#: A clean configuration without the query source, so no I001 either.
CLEAN: dict[str, Any] = {"SIGNING_KEY": HS_KEY, "TOKEN_SOURCES": ["subprotocol"]}


def run_checks(config: Any) -> list[checks.CheckMessage]:
    """Run the checks with ``CHANNELS_JWT = config``."""
    with override_settings(CHANNELS_JWT=config):
        return check_settings(Settings())


def check_problems(messages: list[checks.CheckMessage]) -> list[str]:
    """The ids of errors and warnings (infos left out)."""
    return [message.id for message in messages if message.level >= checks.WARNING]


def only_check_message(messages: list[checks.CheckMessage], check_id: str) -> checks.CheckMessage:
    """Assert that the errors and warnings are exactly one ``check_id``; return it."""
    assert check_problems(messages) == [check_id]
    (message,) = (message for message in messages if message.id == check_id)
    assert message.hint
    return message


# --- extraction (channels_jwt.extract and sources: no Django) ---------------------------------


#: A credential-shaped string for the extraction tests (never verified).
TOKEN = "header.payload.signature"


#: A second one, different from ``TOKEN``.
OTHER_TOKEN = "other.token.value"


#: The Origin the extraction tests trust (this site).
TRUSTED_ORIGIN = "https://example.com"


#: ASGI headers.
Headers = list[tuple[bytes, bytes]]


def trusted_origin(scheme: str | None, headers: Headers) -> bool:
    """Only a page at ``https://example.com`` is this site (whatever the scheme and ``Host``)."""
    return (b"origin", TRUSTED_ORIGIN.encode()) in headers


EXTRACTION_RULES = ExtractionRules(
    sources=("subprotocol", "query", "header", "cookie"),
    subprotocol="access_token",
    query_param="token",
    header_scheme="Bearer",
    cookie_name="jwt",
    max_token_bytes=8192,
    trusted_origin=trusted_origin,
)


def extraction_rules(**changes: Any) -> ExtractionRules:
    """``EXTRACTION_RULES`` with some fields replaced."""
    return replace(EXTRACTION_RULES, **changes)


def make_scope(
    *,
    subprotocols: list[str] | None = None,
    query_string: bytes = b"",
    headers: Headers | None = None,
) -> dict[str, Any]:
    """A minimal websocket scope."""
    return {
        "type": "websocket",
        "path": "/ws/",
        "subprotocols": subprotocols or [],
        "query_string": query_string,
        "headers": headers or [],
    }


def extract(
    *,
    subprotocols: list[str] | None = None,
    query_string: bytes = b"",
    headers: Headers | None = None,
    **changes: Any,
) -> Extraction:
    """Run ``extract_token`` on a scope built from the keyword arguments."""
    scope = make_scope(subprotocols=subprotocols, query_string=query_string, headers=headers)
    return extract_token(scope, extraction_rules(**changes))


# --- scopes, inner apps, users ----------------------------------------------------------------


def websocket_scope(
    path: str = "/ws/chat/",
    *,
    query_string: bytes = b"",
    subprotocols: Any = (),
    headers: Any = (),
    **extra: Any,
) -> dict[str, Any]:
    """A WebSocket scope as uvicorn builds it; offered subprotocols also appear as a header.

    Everything is passed through as given, so tests can inject raw bytes and odd strings.
    """
    offered = list(subprotocols)
    all_headers = [(b"host", b"testserver"), *headers]
    if offered:
        joined = ", ".join(offered).encode("utf-8", "surrogatepass")
        all_headers.append((b"sec-websocket-protocol", joined))
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "headers": all_headers,
        "subprotocols": offered,
        **extra,
    }


@dataclass
class RecordingApp:
    """An inner ASGI app that records each scope, accepts, and echoes frames back."""

    accept: bool = True
    subprotocol: str | None = None
    scopes: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] != "websocket":
            return
        message = await receive()
        assert message["type"] == "websocket.connect"
        if not self.accept:
            await send({"type": "websocket.close", "code": 4000})
            return
        await send({"type": "websocket.accept", "subprotocol": self.subprotocol})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or "bytes"})

    @property
    def called(self) -> bool:
        """Whether the app ran at all."""
        return bool(self.scopes)


@dataclass
class RefreshingApp:
    """Accepts, then hands every text frame to ``scope["jwt"].refresh()`` and reports.

    It answers ``refreshed`` or ``refused <reason>``, and keeps the refused exceptions.
    """

    scopes: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[ChannelsJWTError] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            try:
                await scope["jwt"].refresh(message["text"])
            except ChannelsJWTError as exc:
                self.refusals.append(exc)
                await send({"type": "websocket.send", "text": f"refused {exc.reason}"})
            else:
                await send({"type": "websocket.send", "text": "refreshed"})

    @property
    def connection(self) -> JWTConnection:
        """The ``scope["jwt"]`` of the (first) connection."""
        connection: JWTConnection = self.scopes[0]["jwt"]
        return connection


def user_pk_range() -> tuple[int, int]:
    """The values the user table's primary key column holds on the test database.

    Django answers a lookup outside this range with no rows and no query: on PostgreSQL,
    ``auth_user.id`` is an ``integer`` (32 bits); on SQLite every integer is 64 bits.
    """
    internal_type = get_user_model()._meta.pk.get_internal_type()
    low, high = connection.ops.integer_field_range(internal_type)
    return low, high


# --- stand-in hooks (USER_RESOLVER, REVOCATION_CHECK) -----------------------------------------


async def crashing_resolver(claims: Mapping[str, Any], scope: Any) -> Any:
    """A user resolver whose backing store is down."""
    raise RuntimeError("database is down")


async def finding_nobody(claims: Mapping[str, Any], scope: Any) -> Any:
    """A user resolver that finds no user for any token."""
    return None


async def always_revoked(claims: Mapping[str, Any]) -> bool:
    """A revocation check that revokes every token."""
    return True


async def never_revoked(claims: Mapping[str, Any]) -> bool:
    """A revocation check that revokes nothing (so ``jti`` is required); reachable by path."""
    return False


async def picky_revocation_check(claims: Mapping[str, Any]) -> bool:
    """``revoked-*`` jtis are revoked; ``crash-*`` ones crash the check."""
    jti = str(claims["jti"])
    if jti.startswith("crash-"):
        raise ConnectionError("cache is down")
    return jti.startswith("revoked-")


class RateLimited(AuthenticationFailed):
    """A resolver-side refusal with the 4429 code (the opt-in rate limit's code)."""

    close_code = CloseCode.RATE_LIMITED
    reason = "rate_limited"


async def rate_limiting_resolver(claims: Any, scope: Any) -> Any:
    raise RateLimited("too many attempts")


# --- driving a handshake in process -----------------------------------------------------------


async def timed_handshake(
    app: Any, scope: dict[str, Any], *, timeout: float = 1.0
) -> tuple[list[dict[str, Any]], float]:
    """Send ``websocket.connect``; what the app sends up to its close, and how long it took.

    ``ApplicationCommunicator.wait`` re-raises whatever escaped the application, so an
    exception leaking out of the middleware fails the test here.
    """
    communicator = ApplicationCommunicator(app, scope)
    started = time.monotonic()
    await communicator.send_input({"type": "websocket.connect"})
    messages = [await communicator.receive_output(timeout)]
    while messages[-1]["type"] == "websocket.accept":
        messages.append(await communicator.receive_output(timeout))
    elapsed = time.monotonic() - started
    await communicator.wait(timeout)
    return messages, elapsed


async def accepted_then_closed(
    app: Any, scope: dict[str, Any], *, timeout: float = 1.0
) -> list[dict[str, Any]]:
    """Send ``websocket.connect`` and return what the app sends until it finishes."""
    messages, _ = await timed_handshake(app, scope, timeout=timeout)
    return messages


async def open_connection(
    app: Any, path: str = PATH, **kwargs: Any
) -> tuple[WebsocketCommunicator, tuple[bool, Any]]:
    """A ``WebsocketCommunicator`` on ``path`` and the outcome of its ``connect``."""
    communicator = WebsocketCommunicator(app, path, **kwargs)
    return communicator, await communicator.connect()


async def rejection(app: Any, path: str = PATH, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Connect, expect accept-then-close; return the accepted subprotocol and the close."""
    communicator, (connected, subprotocol) = await open_connection(app, path, **kwargs)
    assert connected
    close = await communicator.receive_output()
    await communicator.wait()
    return subprotocol, close


def close_message(code: int, reason: str) -> dict[str, Any]:
    """The ``websocket.close`` message with ``code`` and ``reason``."""
    return {"type": "websocket.close", "code": code, "reason": reason}


# --- attempts the middleware refuses, and how -------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What a client offers, and the per-instance settings of the middleware it meets."""

    subprotocols: list[str]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    code: int
    reason: str
    status: int
    challenge: bytes | None


def offering(token: str, **settings: Any) -> Attempt:
    return Attempt(["access_token", token], settings)


def no_credential(user: Any) -> Attempt:
    return Attempt([])


def malformed(user: Any) -> Attempt:
    return offering("not-a-jwt")


def wrong_signature(user: Any) -> Attempt:
    return offering(hs_token(claims_for(user.pk), key=OTHER_KEY))


def expired(user: Any) -> Attempt:
    return offering(expired_token_for(user))


def unknown_user(user: Any) -> Attempt:
    return offering(hs_token(claims_for(user.pk + 1000)))


def revoked(user: Any) -> Attempt:
    return offering(token_for(user), REVOCATION_CHECK=always_revoked)


def lookup_crashes(user: Any) -> Attempt:
    return offering(token_for(user), USER_RESOLVER=crashing_resolver)


def rate_limited(user: Any) -> Attempt:
    return offering(token_for(user), USER_RESOLVER=rate_limiting_resolver)


# --- open connections in process (scope["jwt"], the guard, refresh) ---------------------------


#: Seconds any single step (a handshake, a frame, a close) may take beyond its due time.
TIMEOUT = 3.0


#: The close of a socket whose token or user was revoked.
CLOSE_REVOKED = {"type": "websocket.close", "code": 4441, "reason": "token_revoked"}


#: The close of a socket whose authentication backend (the channel layer) failed.
CLOSE_UNAVAILABLE = {"type": "websocket.close", "code": 4503, "reason": "auth_unavailable"}


#: The ``configure`` fixture: set ``CHANNELS_JWT`` keys for one test.
Configure = Callable[..., None]


class Sockets:
    """Opens in-process connections and hangs up every one that is still running at the end."""

    def __init__(self) -> None:
        self.opened: list[ApplicationCommunicator] = []

    def communicator(self, app: Any, token: str | None, path: str = PATH) -> Any:
        offered = [MARKER, token] if token is not None else []
        communicator = ApplicationCommunicator(app, websocket_scope(path, subprotocols=offered))
        self.opened.append(communicator)
        return communicator

    async def open(self, app: Any, token: str) -> ApplicationCommunicator:
        """Connect with ``token`` and check the app's accept came through (marker named)."""
        communicator = self.communicator(app, token)
        await communicator.send_input({"type": "websocket.connect"})
        accept = await communicator.receive_output(TIMEOUT)
        assert accept == {"type": "websocket.accept", "subprotocol": MARKER}
        return communicator

    async def refused(self, app: Any, token: str) -> dict[str, Any]:
        """Connect with ``token``, expecting the middleware's accept-then-close: the close."""
        communicator = self.communicator(app, token)
        await communicator.send_input({"type": "websocket.connect"})
        accept = await communicator.receive_output(TIMEOUT)
        assert accept["type"] == "websocket.accept"
        close: dict[str, Any] = await communicator.receive_output(TIMEOUT)
        await communicator.wait(TIMEOUT)
        return close

    async def hang_up_all(self) -> None:
        for communicator in self.opened:
            if communicator._future is not None and not communicator.future.done():
                await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
                await communicator.wait(TIMEOUT)


async def hang_up(communicator: ApplicationCommunicator) -> None:
    """The client disconnects; wait for the application to return."""
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(TIMEOUT)


async def send_text(communicator: ApplicationCommunicator, text: str) -> None:
    await communicator.send_input({"type": "websocket.receive", "text": text})


# --- driving a real server --------------------------------------------------------------------


def tagged(route: str) -> str:
    """A path under ``route`` that no other connection uses, to find this one in the log."""
    return f"/ws/{route}/{uuid.uuid4().hex}/"


def own_address() -> str:
    """A loopback address for one test's connections (never 127.0.0.1, shared by the rest)."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"


def open_socket(
    url: str, credential: str, *, address: str | None = None, timeout: float = 5.0
) -> connect:
    """``websockets`` ``connect`` to ``url`` offering ``[marker, credential]``, from ``address``."""
    local = {} if address is None else {"local_addr": (address, 0)}
    return connect(
        url,
        subprotocols=[MARKER, credential],  # type: ignore[list-item]
        open_timeout=timeout,
        close_timeout=timeout,
        **local,
    )


async def greeting_or_close(
    url: str, credential: str, *, address: str | None = None, timeout: float = 5.0
) -> Any:
    """Connect: the greeting frame (a dict) if the socket opens, else ``(code, reason)``."""
    async with open_socket(url, credential, address=address, timeout=timeout) as ws:
        try:
            return json.loads(await asyncio.wait_for(ws.recv(), timeout))
        except ConnectionClosed as closed:
            frame = closed.rcvd
    assert frame is not None, "no close frame received"
    return frame.code, frame.reason


async def log_containing(
    read_log: Callable[[], str], fragment: str, *, name: str, timeout: float = 5.0
) -> str:
    """The log ``read_log`` returns, once ``fragment`` has appeared in it (``name`` says whose)."""
    deadline = time.monotonic() + timeout
    while fragment not in (log := read_log()):
        if time.monotonic() > deadline:
            pytest.fail(f"{fragment!r} never appeared in the {name} log:\n{log}")
        await asyncio.sleep(0.02)
    return log


# --- signals and the log ----------------------------------------------------------------------


@contextmanager
def connected(signal: Signal, receiver: Callable[..., Any], uid: str) -> Iterator[None]:
    """``receiver`` connected to ``signal`` (as ``uid``) while the block runs."""
    signal.connect(receiver, weak=False, dispatch_uid=uid)
    try:
        yield
    finally:
        signal.disconnect(dispatch_uid=uid)


@contextmanager
def receiving(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    """Collect the keyword arguments of every ``signal`` sent while the block runs."""
    calls: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(kwargs)

    with connected(signal, receiver, "tests.receiving"):
        yield calls


def channels_jwt_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The captured records of the ``channels_jwt`` logger."""
    return [record for record in caplog.records if record.name == LOGGER]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The messages of the captured ``channels_jwt`` warnings."""
    return [
        record.getMessage()
        for record in channels_jwt_records(caplog)
        if record.levelno == logging.WARNING
    ]
