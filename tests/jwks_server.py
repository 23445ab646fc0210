"""A real JWKS endpoint for tests: stdlib HTTP on 127.0.0.1, a free port, changeable at runtime.

The test owns the document it serves (rotate keys by replacing it), reads how many requests
arrived, and can make the endpoint slow (sleep before answering), dripping (one byte at a time,
so that no single socket read waits long), broken (HTTP 500), redirecting (HTTP 302 elsewhere)
or down (stopped; :meth:`JWKSServer.start` brings it back on the same port). Over https
with a :class:`Certificate` for 127.0.0.1, which clients trust only when told to
(``SSL_CERT_FILE``).

Also the other side shared by ``test_jwks.py`` and ``test_interop.py``: identity-provider-shaped
settings and claims, and :func:`handshake`, which drives one WebSocket handshake through a
middleware and times it.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from channels.testing import WebsocketCommunicator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from channels_jwt import JWTAuthMiddleware
from channels_jwt.jwks import MAX_JWKS_BYTES, JWKSKeys
from channels_jwt.pipeline import Pipeline
from tests.harness import RecordingApp

JWKS_PATH = "/.well-known/jwks.json"
ISSUER = "https://idp.example.com/"
AUDIENCE = "https://api.example.com"
ASYMMETRIC_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
PATH = "/ws/idp/"


def jwk_dict(
    key: Any, kid: str | None, *, alg: str | None = None, use: str | None = "sig"
) -> dict[str, Any]:
    """The JWK of a ``cryptography`` key (its public half unless a private key is wanted).

    Private keys give private JWKs (with ``d``): pass ``key.public_key()`` for what an identity
    provider publishes. ``kid``/``use``/``alg`` are added when not ``None``.
    """
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(
        key,
        ed25519.Ed25519PrivateKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PrivateKey
        | ed448.Ed448PublicKey,
    ):
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        raise TypeError(f"no JWK form for {type(key).__name__}")
    extra = {"kid": kid, "use": use, "alg": alg}
    jwk.update({name: value for name, value in extra.items() if value is not None})
    return jwk


def public_jwk(private_key: Any, kid: str | None, *, alg: str | None = None) -> dict[str, Any]:
    """The public signing JWK an identity provider would publish for ``private_key``."""
    return jwk_dict(private_key.public_key(), kid, alg=alg)


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and its private key, as PEM files."""

    certificate_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path) -> Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "channels-jwt test JWKS")])
        now = datetime.datetime.now(datetime.timezone.utc)
        loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        created = cls(directory / "certificate.pem", directory / "key.pem")
        created.certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        created.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return created


class JWKSServer:
    """A JWKS endpoint in a background thread (``ThreadingHTTPServer`` on 127.0.0.1).

    Attributes the test may set at any time: ``document`` (the JSON served), ``delay``
    (seconds to wait before answering), ``drip`` (seconds between the bytes of a ``200``
    answer, from its status line, or from its body when ``drip_headers`` is false), ``status``
    (``200``, or e.g. ``500``) and ``redirect_to`` (answer ``302`` with this ``Location``).
    """

    def __init__(self, *, tls: Certificate | None = None) -> None:
        self.tls = tls
        self.document: Any = {"keys": []}
        self.delay = 0.0
        self.drip = 0.0
        self.drip_headers = True
        self.status = 200
        self.redirect_to: str | None = None
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[tuple[float, str]] = []
        self._hangups: list[float] = []
        self._release = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The JWKS URL (``http://127.0.0.1:<port>/.well-known/jwks.json``, or https)."""
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}{JWKS_PATH}"

    @property
    def requests(self) -> int:
        """How many requests arrived (counted before any delay)."""
        with self._lock:
            return len(self._requests)

    @property
    def request_paths(self) -> list[str]:
        """The path of every request, in arrival order."""
        with self._lock:
            return [path for _, path in self._requests]

    def publish(self, *jwks: dict[str, Any]) -> None:
        """Serve exactly these JWKs from now on (a rotation replaces the whole set)."""
        self.document = {"keys": list(jwks)}

    def start(self) -> None:
        """Listen (on a free port the first time, on the same port after :meth:`stop`)."""
        assert self._httpd is None, "already running"
        self._release.clear()
        httpd = _QuietHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        httpd.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.certificate_file, self.tls.key_file)
            # Each handshake in its handler's thread, not in the loop that accepts.
            httpd.socket = context.wrap_socket(
                httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (the endpoint is down: connections are refused); idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._release.set()  # wake handlers sleeping on ``delay``
        httpd.shutdown()
        httpd.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> int:
        """Block until at least ``count`` requests arrived (or ``timeout``); return the count."""
        deadline = time.monotonic() + timeout
        while self.requests < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.requests

    def wait_for_hangup(self, timeout: float = 5.0) -> float | None:
        """When (``time.monotonic()``) a client first hung up on a dripping answer, if it did
        within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self._hangups and time.monotonic() < deadline:
            time.sleep(0.005)
        with self._lock:
            return self._hangups[0] if self._hangups else None

    def _record(self, path: str) -> None:
        with self._lock:
            self._requests.append((time.monotonic(), path))

    def _sleep(self) -> None:
        if self.delay > 0:
            self._release.wait(self.delay)


class _QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that refuse the certificate or give up are part of the tests."""


def _handler_for(server: JWKSServer) -> type[BaseHTTPRequestHandler]:
    class JWKSHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server._record(self.path)
            server._sleep()
            if server.redirect_to is not None:
                self._answer(302, b"", location=server.redirect_to)
            elif server.status != 200:
                self._answer(server.status, b'{"error": "internal"}')
            elif server.drip > 0:
                self._drip(json.dumps(server.document).encode())
            else:
                self._answer(200, json.dumps(server.document).encode())

        def _drip(self, body: bytes) -> None:
            head = (
                f"{self.protocol_version} 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            answer, sent = head + body, 0 if server.drip_headers else len(head)
            try:
                self.wfile.write(answer[:sent])
                # The second write after the client closed its socket fails (the first one
                # draws the reset), so a hang-up is seen within two drips.
                while sent < len(answer) and not server._release.wait(server.drip):
                    self.wfile.write(answer[sent : sent + 1])
                    sent += 1
            except OSError:
                with server._lock:
                    server._hangups.append(time.monotonic())

        def _answer(self, status: int, body: bytes, location: str | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if location is not None:
                    self.send_header("Location", location)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (timeout) before the answer

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

    return JWKSHandler


@contextmanager
def running_jwks_server(*, tls: Certificate | None = None) -> Iterator[JWKSServer]:
    """A started :class:`JWKSServer` (over https with ``tls``), stopped on exit."""
    server = JWKSServer(tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# The client side.


def idp_settings(jwk_url: str | None, **extra: Any) -> dict[str, Any]:
    """Per-middleware settings for an identity provider's tokens (no database needed)."""
    return {
        "ALGORITHMS": ASYMMETRIC_ALGORITHMS,
        "JWK_URL": jwk_url,
        "AUDIENCE": AUDIENCE,
        "ISSUER": ISSUER,
        "TOKEN_TYPE_CLAIM": None,
        "USER_ID_CLAIM": "sub",
        "USER_ID_FIELD": "username",
        "USER_RESOLVER": "channels_jwt.users.token_user",
        "TOKEN_SOURCES": ["subprotocol"],
        **extra,
    }


def idp_claims(sub: str = "alice", **overrides: Any) -> dict[str, Any]:
    """Claims shaped like an identity provider's access token; ``...`` drops a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": sub,
        "aud": [AUDIENCE, "https://idp.example.com/userinfo"],
        "iat": now,
        "exp": now + 300,
        "scope": "openid chat:read",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not ...}


@dataclass(frozen=True)
class Outcome:
    """How one handshake ended: ``code`` is ``None`` when the inner app got the connection."""

    code: int | None
    reason: str
    seconds: float

    @property
    def accepted(self) -> bool:
        """Whether the connection reached the inner application."""
        return self.code is None


async def handshake(app: Any, token: str, *, timeout: float = 5.0) -> Outcome:
    """Offer ``token`` as a subprotocol, then ping; the inner app must echo it to count.

    ``seconds`` is the time until the middleware decided (the accept arrived). The middleware
    rejects by accepting and closing at once, so a close after the accept is a rejection.
    """
    communicator = WebsocketCommunicator(app, PATH, subprotocols=["access_token", token])
    started = time.monotonic()
    connected, _ = await communicator.connect(timeout)
    seconds = time.monotonic() - started
    assert connected, "the middleware accepts, then closes, to reject"
    await communicator.send_to(text_data="ping")
    message = await communicator.receive_output(timeout)
    if message["type"] == "websocket.close":
        await communicator.wait(timeout)
        return Outcome(message["code"], message.get("reason", ""), seconds)
    assert message == {"type": "websocket.send", "text": "ping"}
    await communicator.disconnect()
    return Outcome(None, "", seconds)


def idp_token(private_key: Any, kid: str | None, *, alg: str = "RS256", **claims: Any) -> str:
    """A token the identity provider signed with ``private_key`` (``kid`` header if given)."""
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(idp_claims(**claims), private_key, algorithm=alg, headers=headers)


def idp_app(url: str, inner: RecordingApp | None = None, **extra: Any) -> JWTAuthMiddleware:
    return JWTAuthMiddleware(inner or RecordingApp(), settings=idp_settings(url, **extra))


def jwks_of(app: JWTAuthMiddleware) -> JWKSKeys:
    """The ``JWKSKeys`` the middleware verifies with (built on first use, then cached)."""
    jwks = Pipeline.for_settings(app.settings).verifier.rules.jwks
    assert jwks is not None
    return jwks


def keys_for(private_keys: list[Any]) -> list[bytes]:
    """DER forms of public keys, to compare what ``candidates`` returns."""
    return [der(key.public_key()) for key in private_keys]


def der(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> bool:
    """Poll an async condition until it holds (or ``timeout``); return its last value."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def wait_for_requests(server: JWKSServer, count: int) -> int:
    """Wait, off the event loop, until ``server`` received ``count`` requests."""
    return await asyncio.to_thread(server.wait_for_requests, count)


def outage(server: JWKSServer, mode: str) -> None:
    if mode == "stopped":
        server.stop()
    elif mode == "http-500":
        server.status = 500
    elif mode == "oversized":
        server.document = {**server.document, "padding": "x" * MAX_JWKS_BYTES}
    else:
        server.document = "down for maintenance"


def recover(server: JWKSServer, mode: str) -> None:
    if mode == "stopped":
        server.start()
    server.status = 200


OUTAGES = ["stopped", "http-500", "not-a-json-object", "oversized"]
