"""Shared fixtures: keys generated once per session, users, and a recording inner app."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings

HS_KEY: str = settings.CHANNELS_JWT["SIGNING_KEY"]


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


@pytest.fixture(scope="session")
def keys() -> Keys:
    """RSA-2048 (two), RSA-1024 (too small), P-256/384/521 and Ed25519 private keys."""
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_other=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_small=rsa.generate_private_key(public_exponent=65537, key_size=1024),
        p256=ec.generate_private_key(ec.SECP256R1()),
        p384=ec.generate_private_key(ec.SECP384R1()),
        p521=ec.generate_private_key(ec.SECP521R1()),
        ed25519=ed25519.Ed25519PrivateKey.generate(),
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


@pytest.fixture
def inner() -> RecordingApp:
    """A fresh recording inner app."""
    return RecordingApp()


@pytest.fixture
def user(django_user_model: Any, transactional_db: None) -> Any:
    """An active user."""
    return django_user_model.objects.create_user(username="alice", password="pw-alice")


@pytest.fixture
def inactive_user(django_user_model: Any, transactional_db: None) -> Any:
    """An inactive user."""
    return django_user_model.objects.create_user(username="bob", is_active=False)
