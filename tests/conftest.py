"""Shared fixtures: keys generated once per session, users, and a recording inner app."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections

from tests.postgres.server import (
    PostgresNotInstalled,
    PostgresServer,
    find_bindir,
    throwaway_postgres,
)

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


def user_pk_range() -> tuple[int, int]:
    """The values the user table's primary key column holds on the test database.

    Django answers a lookup outside this range with no rows and no query: on PostgreSQL,
    ``auth_user.id`` is an ``integer`` (32 bits); on SQLite every integer is 64 bits.
    """
    internal_type = get_user_model()._meta.pk.get_internal_type()
    low, high = connection.ops.integer_field_range(internal_type)
    return low, high


@pytest.fixture(scope="session")
def suite_postgres() -> Iterator[PostgresServer | None]:
    """With ``CHANNELS_JWT_TEST_DATABASE=postgresql``, the session's throwaway server.

    ``None`` on SQLite. Started only when a test needs the database (pytest-django's
    ``django_db_setup`` asks for it through ``django_db_modify_db_settings``), stopped and
    deleted at the end of the session, after the test database has been dropped.
    """
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        yield None
        return
    try:
        find_bindir()
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    with throwaway_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, suite_postgres: PostgresServer | None
) -> None:
    """Point the ``default`` database at the session's PostgreSQL server, if there is one.

    pytest-django creates the test database right after this fixture. The settings dict is
    changed in place: Django's connection handler holds the same dict.
    """
    if suite_postgres is not None:
        settings.DATABASES["default"]["PORT"] = str(suite_postgres.port)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, suite_postgres: PostgresServer | None) -> Iterator[None]:
    """pytest-django's test database, minus the connections other threads left open.

    ``sync_to_async`` code (Django's async ORM, channels' database thread) leaves connections
    open in worker threads that outlive every test; PostgreSQL refuses to drop a database
    anyone is connected to, so those are cut before pytest-django drops it.
    """
    yield
    if suite_postgres is not None:
        connections.close_all()
        # The test database's name, which Django put in the settings when it created it.
        suite_postgres.terminate_backends(connection.settings_dict["NAME"])
