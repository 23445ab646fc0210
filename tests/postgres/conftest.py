"""Fixtures for the live PostgreSQL tests: a throwaway server, its users, and uvicorn on it.

One PostgreSQL server per module (``server.py``), with a database migrated and populated by a
subprocess that uses the servers' own settings module; then uvicorn, once per connection
mode (``CONN_MAX_AGE`` and ``CONN_HEALTH_CHECKS``), serving ``tests.postgres.asgi_app`` with
its output captured to a file. Readiness is polled, never slept for, and every process and
directory is removed afterwards, including when a test or a start-up fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.postgres.server import (
    PostgresNotInstalled,
    PostgresServer,
    find_bindir,
    throwaway_postgres,
)
from tests.postgres.server_settings import (
    CONN_MAX_AGE_ENV,
    HEALTH_CHECKS_ENV,
    NAME_ENV,
    PORT_ENV,
)
from tests.processes import ServerProcess, create_users, free_port, stop, wait_until_listening

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLICATION = "tests.postgres.asgi_app:application"
#: The database the servers use on the throwaway PostgreSQL server.
DATABASE = "channels_jwt_live"


@dataclass(frozen=True)
class ConnectionMode:
    """A ``DATABASES`` connection configuration, and what it was measured to do."""

    name: str
    conn_max_age: int
    health_checks: bool
    #: Whether consecutive handshakes share one database connection (and so one backend).
    reuses_connection: bool
    #: Whether the first handshake after the database restarted, or after its connections
    #: were terminated, is refused with 4503 (it ran into the dead connection).
    refuses_first_after_restart: bool


MODES = [
    ConnectionMode("conn-max-age-0", 0, False, False, False),
    ConnectionMode("persistent-health-checks", 60, True, True, False),
    # Not a configuration to recommend: the contrast that shows what health checks buy.
    ConnectionMode("persistent-no-health-checks", 60, False, True, True),
]


@dataclass(frozen=True)
class PostgresUsers:
    """Primary keys of the users in the live PostgreSQL database."""

    active: int
    inactive: int


@dataclass(frozen=True)
class PostgresSite:
    """uvicorn serving the application on the throwaway PostgreSQL server, in one mode."""

    server: ServerProcess
    postgres: PostgresServer
    mode: ConnectionMode
    users: PostgresUsers


def server_environment(postgres: PostgresServer, mode: ConnectionMode) -> dict[str, str]:
    """The environment of the uvicorn (and database set-up) subprocesses."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.postgres.server_settings",
        PORT_ENV: str(postgres.port),
        NAME_ENV: DATABASE,
        CONN_MAX_AGE_ENV: str(mode.conn_max_age),
        HEALTH_CHECKS_ENV: "1" if mode.health_checks else "0",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def live_postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server with an empty :data:`DATABASE`; fails if not installed."""
    try:
        find_bindir()
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    with throwaway_postgres() as postgres:
        postgres.create_database(DATABASE)
        yield postgres


@pytest.fixture(scope="module")
def postgres_users(live_postgres: PostgresServer) -> PostgresUsers:
    """Migrate :data:`DATABASE`; create an active and an inactive user (in a subprocess)."""
    pks = create_users(
        server_environment(live_postgres, MODES[0]),
        {"carol-pg": {}, "dave-pg": {"is_active": False}},
    )
    return PostgresUsers(active=pks["carol-pg"], inactive=pks["dave-pg"])


@pytest.fixture(scope="module", params=MODES, ids=[mode.name for mode in MODES])
def site(
    request: pytest.FixtureRequest,
    live_postgres: PostgresServer,
    postgres_users: PostgresUsers,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PostgresSite]:
    """uvicorn on a free port in one connection mode, started once per mode."""
    mode: ConnectionMode = request.param
    port = free_port()
    log_path = tmp_path_factory.mktemp("postgres-live") / f"uvicorn-{mode.name}.log"
    command = [sys.executable, "-m", "uvicorn", APPLICATION, "--lifespan", "off"]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=server_environment(live_postgres, mode),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log_path)
        server = ServerProcess(name="uvicorn", port=port, log_path=log_path)
        yield PostgresSite(server, live_postgres, mode, postgres_users)
    finally:
        stop(process)
