"""Starting and stopping the server processes the live, Redis and end-to-end tests run,
and preparing the database they share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
REPO_ROOT = Path(__file__).resolve().parents[1]

_CREATE_USERS = """
import json
import sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
User = get_user_model()
users = json.loads(sys.argv[1])
print(json.dumps({
    name: User.objects.create_user(username=name, **fields).pk for name, fields in users.items()
}))
"""


@dataclass(frozen=True)
class ServerProcess:
    """A running server: its name, where it listens, and the file its output goes to."""

    name: str
    port: int
    log_path: Path
    #: Whether it serves TLS (``wss://``).
    secure: bool = False

    def url(self, path: str) -> str:
        """The ``ws://`` (``wss://``) URL of ``path`` (which starts with ``/``) on this server."""
        return f"{'wss' if self.secure else 'ws'}://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        """Everything the server has written to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
    """Terminate ``process`` (kill it if it lingers) and reap it.

    A process started with ``start_new_session=True`` leads a process group of its own: once
    it has exited, whatever is left in that group (a worker the server spawned and failed to
    stop) is killed too, so no server outlives its test.
    """
    group = _own_group(process)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
    if group is not None:
        # Usually the group is empty by now (the server stopped its own workers).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def _own_group(process: subprocess.Popen[bytes]) -> int | None:
    """The process group ``process`` leads, or ``None`` (it shares its parent's, or is gone)."""
    if process.returncode is not None:
        return None  # already reaped: its pid may belong to another process by now.
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        return None
    return group if group == process.pid else None


def create_users(
    environment: Mapping[str, str], users: Mapping[str, Mapping[str, object]]
) -> dict[str, int]:
    """Migrate the servers' database and create ``users`` (username: extra fields) in it.

    Run in a subprocess with the servers' own settings module (``DJANGO_SETTINGS_MODULE`` in
    ``environment``), so the servers see the rows. Returns each new user's pk by username.
    """
    return _set_up(_CREATE_USERS, environment, json.dumps(users), argument=True)


_BULK_CREATE_USERS = """
import json
import sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
User = get_user_model()
names = json.loads(sys.stdin.read())
User.objects.bulk_create(
    [User(username=name, password=make_password(None)) for name in names], batch_size=500
)
found = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
print(json.dumps(found))
"""


def bulk_create_users(environment: Mapping[str, str], usernames: list[str]) -> dict[str, int]:
    """Migrate the servers' database and create many active users in it, in one statement.

    Like :func:`create_users`, in a subprocess with the servers' settings, but for thousands:
    the users get an unusable password (nothing to hash). Returns each new pk by username.
    """
    pks = _set_up(_BULK_CREATE_USERS, environment, json.dumps(usernames), argument=False)
    if len(pks) != len(usernames):
        pytest.fail(f"database set-up created {len(pks)} of {len(usernames)} users")
    return pks


def _set_up(
    script: str, environment: Mapping[str, str], data: str, *, argument: bool
) -> dict[str, int]:
    """Run a set-up ``script`` with the servers' settings, ``data`` as its argument or stdin.

    Returns the JSON object its last line prints; a failure fails the test.
    """
    completed = subprocess.run(
        [sys.executable, "-c", script, *([data] if argument else [])],
        cwd=REPO_ROOT,
        env=dict(environment),
        input=None if argument else data,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"database set-up failed:\n{completed.stderr}")
    result: dict[str, int] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result
