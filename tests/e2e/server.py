"""The example project under uvicorn (or daphne) in a subprocess, on a free loopback port.

Its database is a temporary SQLite file, migrated and seeded (``seed_demo`` plus one user the
tests may deactivate) by a subprocess before the server starts. Readiness is polled (an HTTP
request that must succeed), never a fixed sleep. The server's output goes to a log file the
tests read, and it is always terminated.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import free_port, stop

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO_ROOT / "example_project"
START_TIMEOUT = 20.0

#: Short enough to watch a token expire in a test, long enough for a test step to finish.
ACCESS_TOKEN_SECONDS = 4
#: The user the tests deactivate (the demo users stay as ``seed_demo`` made them).
DISPOSABLE_USER = ("dave", "dave-e2e-password")

_SETUP_DATABASE = """
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
call_command("seed_demo")
username, password = sys.argv[1:3]
User = get_user_model()
User.objects.create_user(username=username, password=password)
print(json.dumps({user.username: user.pk for user in User.objects.all()}))
"""


@dataclass(frozen=True)
class ExampleServer:
    """A running example project: where it listens, its users, its key and its log."""

    port: int
    log_path: Path
    db_path: Path
    signing_key: str
    user_ids: dict[str, int]

    @property
    def url(self) -> str:
        """The site's base URL (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the server has written so far."""
        return self.log_path.read_text(errors="replace")


def environment(db_path: Path, signing_key: str) -> dict[str, str]:
    """The environment of the example's processes: its settings, never the test suite's."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "EXAMPLE_DB_PATH": str(db_path),
        "EXAMPLE_JWT_SIGNING_KEY": signing_key,
        "EXAMPLE_ACCESS_TOKEN_SECONDS": str(ACCESS_TOKEN_SECONDS),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("REDIS_URL", "EXAMPLE_DEBUG"):  # the in-memory layer, as the demo default
        env.pop(name, None)
    return env


def set_up_database(env: dict[str, str]) -> dict[str, int]:
    """Migrate and seed; return ``{username: pk}``."""
    completed = subprocess.run(
        [sys.executable, "-c", _SETUP_DATABASE, *DISPOSABLE_USER],
        cwd=EXAMPLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"example database set-up failed:\n{completed.stdout}\n{completed.stderr}")
    user_ids: dict[str, int] = json.loads(completed.stdout.strip().splitlines()[-1])
    return user_ids


def start(
    env: dict[str, str], port: int, log_path: Path, server: str = "uvicorn"
) -> subprocess.Popen[bytes]:
    """Start ``server`` (``"uvicorn"`` or ``"daphne"``) serving ``config.asgi:application``
    on ``port``."""
    command = [sys.executable, "-m", server, "config.asgi:application"]
    if server == "uvicorn":
        command += ["--app-dir", str(EXAMPLE_DIR), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--lifespan", "off"]
    elif server == "daphne":  # imports the application from its working directory
        command += ["-b", "127.0.0.1", "-p", str(port)]
    else:
        raise ValueError(f"unknown server {server!r}")
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            command,
            cwd=EXAMPLE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    """Poll ``url`` until it answers 200; fail if the process exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the example server exited with {process.returncode}:\n"
                + log_path.read_text(errors="replace")
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(
        f"the example server did not answer {url} within {START_TIMEOUT}s:\n"
        + log_path.read_text(errors="replace")
    )


@contextmanager
def running_example(directory: Path, server: str = "uvicorn") -> Iterator[ExampleServer]:
    """The example project, migrated and seeded in ``directory``, under ``server`` on a free
    port until the block ends."""
    db_path = directory / "db.sqlite3"
    signing_key = secrets.token_urlsafe(64)
    env = environment(db_path, signing_key)
    user_ids = set_up_database(env)
    port = free_port()
    log_path = directory / f"{server}.log"
    process = start(env, port, log_path, server=server)
    try:
        example = ExampleServer(port, log_path, db_path, signing_key, user_ids)
        wait_until_serving(process, f"{example.url}/api/csrf", log_path)
        yield example
    finally:
        stop(process)
