"""Fixtures that start real ASGI servers on 127.0.0.1 in subprocesses.

The servers are those of :data:`tests.live.servers.SERVERS` (uvicorn, daphne, hypercorn,
granian). One SQLite database per session, migrated and populated by a subprocess that uses
the servers' own settings module; then each server starts once, on a free port, in a session
of its own, with its stdout and stderr captured to a file. Readiness is a TCP connect poll,
never a fixed sleep: every one of these servers imports the application, and so sets Django
up, before its socket listens (hypercorn's and granian's main processes bind early, but the
socket listens only once their worker has loaded the application). Servers, and any worker
processes they spawned, are always terminated, including when a test or start-up fails.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.jwks_server import Certificate
from tests.live.server_settings import LIVE_DIR_ENV
from tests.live.servers import DEFAULT_APPLICATION, SERVERS, server_command
from tests.processes import ServerProcess, create_users, free_port, stop, wait_until_listening

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLICATION = DEFAULT_APPLICATION


@dataclass(frozen=True)
class LiveUsers:
    """Primary keys of the users in the live servers' database."""

    active: int
    inactive: int


LiveServer = ServerProcess


def server_environment(live_dir: Path) -> dict[str, str]:
    """The environment of the server (and database set-up) subprocesses."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.live.server_settings",
        LIVE_DIR_ENV: str(live_dir),
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def running_server(
    name: str,
    live_dir: Path,
    application: str = APPLICATION,
    options: tuple[str, ...] = (),
    tls: Certificate | None = None,
) -> Iterator[LiveServer]:
    """Start server ``name`` on a free port, wait until it listens, stop it afterwards.

    ``options`` go to the server's command line (and name its log file); with ``tls`` it
    serves ``wss://`` with that certificate.
    """
    port = free_port()
    secure = ["tls"] if tls else []
    label = "-".join(
        [name, application.replace(":", "-"), *(o.strip("-") for o in options), *secure]
    )
    files = (tls.certificate_file, tls.key_file) if tls else None
    log_path = live_dir / f"{label.replace('/', '_')}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*server_command(name, port, application, files), *options],
            cwd=REPO_ROOT,
            env=server_environment(live_dir),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own process group, so stop() also reaps workers (granian, hypercorn).
            start_new_session=True,
        )
    try:
        wait_until_listening(process, port, log_path)
        yield LiveServer(name=name, port=port, log_path=log_path, secure=tls is not None)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the live servers' SQLite database and logs."""
    return tmp_path_factory.mktemp("live")


def prepare_database(live_dir: Path) -> LiveUsers:
    """Migrate the SQLite database in ``live_dir``; create an active and an inactive user."""
    pks = create_users(
        server_environment(live_dir), {"carol-live": {}, "dave-live": {"is_active": False}}
    )
    return LiveUsers(active=pks["carol-live"], inactive=pks["dave-live"])


@pytest.fixture(scope="session")
def live_users(live_dir: Path) -> LiveUsers:
    """Migrate the live database and create an active and an inactive user in it."""
    return prepare_database(live_dir)


@pytest.fixture(scope="session", params=SERVERS)
def asgi_server(
    request: pytest.FixtureRequest, live_dir: Path, live_users: LiveUsers
) -> Iterator[LiveServer]:
    """Each server of :data:`SERVERS` serving ``tests.live.asgi_app``, once per session."""
    with running_server(request.param, live_dir) as server:
        yield server


@pytest.fixture(scope="session", params=SERVERS)
def tls_server(
    request: pytest.FixtureRequest,
    live_dir: Path,
    live_users: LiveUsers,
    loopback_certificate: Certificate,
) -> Iterator[LiveServer]:
    """Each server of :data:`SERVERS` serving ``tests.live.asgi_app`` over TLS (``wss://``)."""
    with running_server(request.param, live_dir, tls=loopback_certificate) as server:
        yield server
