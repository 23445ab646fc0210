"""Fixtures that start real ASGI servers (uvicorn, daphne) on 127.0.0.1 in subprocesses.

One SQLite database per session, migrated and populated by a subprocess that uses the
servers' own settings module; then each server starts once, on a free port, with its stdout
and stderr captured to a file. Readiness is a TCP connect poll, never a fixed sleep (both
servers import the application, and so set Django up, before they bind). Servers are always
terminated, including when a test or the start-up itself fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live.server_settings import LIVE_DIR_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLICATION = "tests.live.asgi_app:application"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

_SETUP_DATABASE = """
import json
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
User = get_user_model()
active = User.objects.create_user(username="carol-live")
inactive = User.objects.create_user(username="dave-live", is_active=False)
print(json.dumps({"active": active.pk, "inactive": inactive.pk}))
"""


@dataclass(frozen=True)
class LiveUsers:
    """Primary keys of the users in the live servers' database."""

    active: int
    inactive: int


@dataclass(frozen=True)
class LiveServer:
    """A running server: its name, where it listens, and the file its output goes to."""

    name: str
    port: int
    log_path: Path

    def url(self, path: str) -> str:
        """The ``ws://`` URL of ``path`` (which starts with ``/``) on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        """Everything the server has written to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")


def server_environment(live_dir: Path) -> dict[str, str]:
    """The environment of the server (and database set-up) subprocesses."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.live.server_settings",
        LIVE_DIR_ENV: str(live_dir),
        "PYTHONUNBUFFERED": "1",
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(name: str, port: int) -> list[str]:
    """The command line that starts server ``name`` on ``port``."""
    if name == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            APPLICATION,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APPLICATION]


def wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Poll ``port`` until it accepts a connection; fail if the process dies or times out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"server exited with {process.returncode} before listening:\n"
                + log_path.read_text(errors="replace")
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(
        f"server not listening on {port} after {START_TIMEOUT}s:\n"
        + log_path.read_text(errors="replace")
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` (kill it if it lingers) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the live servers' SQLite database and logs."""
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="session")
def live_users(live_dir: Path) -> LiveUsers:
    """Migrate the live database and create an active and an inactive user in it."""
    completed = subprocess.run(
        [sys.executable, "-c", _SETUP_DATABASE],
        cwd=REPO_ROOT,
        env=server_environment(live_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"live database set-up failed:\n{completed.stderr}")
    pks = json.loads(completed.stdout.strip().splitlines()[-1])
    return LiveUsers(active=pks["active"], inactive=pks["inactive"])


@pytest.fixture(scope="session", params=["uvicorn", "daphne"])
def asgi_server(
    request: pytest.FixtureRequest, live_dir: Path, live_users: LiveUsers
) -> Iterator[LiveServer]:
    """A running uvicorn or daphne serving ``tests.live.asgi_app``, started once per session."""
    name: str = request.param
    port = free_port()
    log_path = live_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            server_command(name, port),
            cwd=REPO_ROOT,
            env=server_environment(live_dir),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log_path)
        yield LiveServer(name=name, port=port, log_path=log_path)
    finally:
        stop(process)
