"""Fixtures of the load tests: one uvicorn process, its database, raised descriptor limits.

Everything runs on 127.0.0.1: uvicorn (uvloop, the websockets protocol) serving
``tests.stress.asgi_app`` (the live tests' guard application plus a diagnostics endpoint)
with ``tests.stress.server_settings`` (the live settings plus a file-based revocation
denylist and levelled logging), started once per module, and real ``websockets`` clients in
the test process.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live.server_settings import LIVE_DIR_ENV
from tests.processes import free_port, stop, wait_until_listening

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLICATION = "tests.stress.asgi_app:application"
#: Open files each process needs: 10,000 sockets held, 200 handshakes in flight, and slack.
NEEDED_DESCRIPTORS = 12288
ACTIVE_USERS = 20
_PROC_VALUE = re.compile(r"^(?P<name>[^:]+):\s+(?P<value>\d+)", re.MULTILINE)


@dataclass(frozen=True)
class LoadUsers:
    """Primary keys of the users in the load server's database."""

    active: list[int]
    inactive: int


@dataclass(frozen=True)
class LoadServer:
    """The running uvicorn process: where it listens, its log, its memory."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    directory: Path

    def url(self, path: str) -> str:
        """The ``ws://`` URL of ``path`` on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        """The server's resident set size (``VmRSS`` in ``/proc/<pid>/status``), in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = {match["name"]: int(match["value"]) for match in _PROC_VALUE.finditer(status)}
        return values["VmRSS"]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far, from ``/proc/<pid>/stat``."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def diagnostics(self) -> dict[str, Any]:
        """Live objects (total and by type) and asyncio tasks in the server, after a GC."""
        url = f"http://127.0.0.1:{self.port}/diagnostics"
        with urllib.request.urlopen(url, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def descriptor_limit(self) -> int:
        """The server's soft limit on open files (from ``/proc/<pid>/limits``)."""
        for line in Path(f"/proc/{self.process.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        raise AssertionError("no 'Max open files' line in /proc/<pid>/limits")


def server_environment(directory: Path) -> dict[str, str]:
    """The environment of the server and of its set-up subprocesses."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.stress.server_settings",
        LIVE_DIR_ENV: str(directory),
        "PYTHONUNBUFFERED": "1",
    }


def run_setup(directory: Path, *args: str, stdin: str = "") -> Any:
    """Run ``tests.stress.server_setup`` with the server's settings; its JSON output."""
    completed = subprocess.run(
        [sys.executable, "-m", "tests.stress.server_setup", *args],
        cwd=REPO_ROOT,
        env=server_environment(directory),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"server_setup {' '.join(args)} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def descriptor_limit() -> Iterator[int]:
    """Raise this process's open-files limit (the server inherits it); restore it after.

    10,000 held sockets need more than the common default soft limit of 1,024. The hard limit
    is the ceiling an unprivileged process may raise to; if even that is too low, the test
    cannot measure what it claims to, so it fails and says how to fix the machine.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NEEDED_DESCRIPTORS:
        pytest.fail(
            f"open-files hard limit is {hard}; the load tests need {NEEDED_DESCRIPTORS} (raise"
            f" it as root: `ulimit -Hn {NEEDED_DESCRIPTORS}`, or in /etc/security/limits.conf)"
        )
    if soft < NEEDED_DESCRIPTORS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NEEDED_DESCRIPTORS, hard))
    yield max(soft, NEEDED_DESCRIPTORS)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def load_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the server's SQLite database, denylist cache and log."""
    return tmp_path_factory.mktemp("stress")


@pytest.fixture(scope="module")
def load_users(load_directory: Path) -> LoadUsers:
    """Migrate the server's database and create its users, before the server starts."""
    pks = run_setup(load_directory, "users", str(ACTIVE_USERS))
    return LoadUsers(active=pks["active"], inactive=pks["inactive"])


@pytest.fixture(scope="module")
def load_server(
    load_directory: Path, load_users: LoadUsers, descriptor_limit: int
) -> Iterator[LoadServer]:
    """uvicorn on a free port, serving the migrated database; stopped afterwards.

    ``--log-level warning`` keeps uvicorn's per-connection INFO lines out (they cost the
    server time under load); its warnings and errors, and channels_jwt's INFO lines, stay.
    """
    directory = load_directory
    port = free_port()
    log_path = directory / "uvicorn.log"
    command = [
        *(sys.executable, "-m", "uvicorn", APPLICATION),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "warning", "--backlog", "4096", "--lifespan", "off"),
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=server_environment(directory),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log_path)
        yield LoadServer(process=process, port=port, log_path=log_path, directory=directory)
    finally:
        stop(process)
