"""Shared fixtures: keys generated once per session, users, and a recording inner app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.conf import settings as django_settings
from django.db import connection, connections

from tests.harness import (
    Configure,
    Keys,
    RecordingApp,
    Sockets,
)
from tests.jwks_server import (
    Certificate,
    JWKSServer,
    running_jwks_server,
)
from tests.postgres.server import (
    PostgresNotInstalled,
    PostgresServer,
    find_bindir,
    throwaway_postgres,
)
from tests.processes import free_port


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


@pytest.fixture
async def sockets() -> AsyncIterator[Sockets]:
    """Connections opened by a test; any still running are hung up afterwards."""
    opened = Sockets()
    yield opened
    await opened.hang_up_all()


@pytest.fixture
def configure(settings: Any) -> Configure:
    """Set ``CHANNELS_JWT`` (the suite's key, stateless users, plus ``keys``).

    Every test also gets a fresh in-memory channel layer, a fresh local-memory default cache,
    and an ``unreachable`` cache alias: Django's Redis cache on a closed loopback port.
    """
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"channels-jwt-tests-{time.monotonic_ns()}",
        },
        "unreachable": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        },
    }

    def configure(**keys: Any) -> None:
        settings.CHANNELS_JWT = {
            **django_settings.CHANNELS_JWT,
            "USER_RESOLVER": "channels_jwt.users.token_user",
            **keys,
        }

    configure()
    return configure


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    """A JWKS endpoint on 127.0.0.1 serving an empty key set until the test publishes keys."""
    with running_jwks_server() as server:
        yield server


@pytest.fixture(scope="session")
def loopback_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for https on 127.0.0.1 (trusted through ``SSL_CERT_FILE``)."""
    return Certificate.create(tmp_path_factory.mktemp("tls"))
