"""A real Redis and two uvicorn processes sharing it (and a SQLite file), plus a third process.

``redis-server`` (Debian's package; ``.ci/run`` installs it) starts on a free loopback port
without persistence, once per session; a test may stop it and the next test gets it back on
the same port. Readiness is a PING, never a fixed sleep, and every process is terminated at
the end, including when start-up fails. A missing ``redis-server`` fails the tests: they are
part of CI and must never be skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.processes import ServerProcess, create_users, free_port, stop, wait_until_listening
from tests.redis.server_settings import (
    LAYER_BACKENDS,
    REDIS_DIR_ENV,
    REDIS_LAYER_ENV,
    REDIS_URL_ENV,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLICATION = "tests.redis.asgi_app:application"
START_TIMEOUT = 15.0
COMMAND_TIMEOUT = 30.0


@dataclass
class RedisServer:
    """A ``redis-server`` subprocess on a fixed loopback port that tests may stop and restart."""

    executable: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def client(self) -> redis.Redis:
        """A redis-py client with short timeouts."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start ``redis-server`` (no RDB, no AOF) and wait until it answers PING."""
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    self.executable,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        try:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(
                        f"redis-server exited with {self.process.returncode}:\n"
                        + self.log_path.read_text(errors="replace")
                    )
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer PING within {START_TIMEOUT}s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Terminate ``redis-server`` (its data goes with it: nothing is persisted)."""
        if self.process is not None:
            stop(self.process)
            self.process = None


@contextmanager
def own_redis(directory: Path, *options: str) -> Iterator[redis.Redis]:
    """A ``redis-server`` of the test's own (not the session's) with ``options``; stopped after.

    Its data and log go to ``directory`` (made if missing). The client it yields has short
    timeouts; a missing ``redis-server`` fails the test.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail("redis-server is not installed: these tests must not be skipped.")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = directory / "redis.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *(executable, "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(directory), *options),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=START_TIMEOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server never answered PING:\n" + log_path.read_text())
                time.sleep(0.02)
        yield client
    finally:
        client.close()
        stop(process)


@dataclass(frozen=True)
class RedisUsers:
    """Primary keys of the users in the servers' database."""

    alice: int
    bob: int


Server = ServerProcess


@pytest.fixture(scope="session")
def redis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the servers' SQLite database and every process's log."""
    return tmp_path_factory.mktemp("redis")


@pytest.fixture(scope="session")
def redis_session(redis_dir: Path) -> Iterator[RedisServer]:
    """``redis-server`` on a free loopback port for the session; a missing binary fails."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(
            "redis-server is not installed: the tests/redis suite needs it "
            "(Debian/Ubuntu: apt-get install redis-server). These tests must not be skipped."
        )
    server = RedisServer(executable=executable, port=free_port(), directory=redis_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_session: RedisServer) -> Iterator[RedisServer]:
    """The session's Redis, running (restarted on its port if a previous test stopped it)."""
    if not redis_session.running():
        redis_session.start()
    yield redis_session
    if not redis_session.running():
        redis_session.start()


def process_environment(redis_dir: Path, redis_url: str) -> dict[str, str]:
    """The environment of every process of this suite (servers, set-up, third process)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.redis.server_settings",
        REDIS_DIR_ENV: str(redis_dir),
        REDIS_URL_ENV: redis_url,
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="session")
def environment(redis_dir: Path, redis_session: RedisServer) -> dict[str, str]:
    return process_environment(redis_dir, redis_session.url)


@pytest.fixture(scope="session")
def redis_users(environment: dict[str, str]) -> RedisUsers:
    """Migrate the shared SQLite database and create two active users in it."""
    pks = create_users(environment, {"alice-redis": {}, "bob-redis": {}})
    return RedisUsers(alice=pks["alice-redis"], bob=pks["bob-redis"])


@contextmanager
def uvicorn_pair(
    redis_dir: Path, environment: dict[str, str], application: str, names: tuple[str, str]
) -> Iterator[tuple[Server, Server]]:
    """Two uvicorn processes serving ``application``, sharing Redis and the DB; stopped after."""
    processes: list[subprocess.Popen[bytes]] = []
    started: list[Server] = []
    try:
        for name in names:
            port = free_port()
            log_path = redis_dir / f"{name}.log"
            with log_path.open("wb") as log_file:
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "uvicorn",
                            application,
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                        ],
                        cwd=REPO_ROOT,
                        env=environment,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                    )
                )
            started.append(Server(name=name, port=port, log_path=log_path))
        for process, server in zip(processes, started, strict=True):
            wait_until_listening(process, server.port, server.log_path)
        yield started[0], started[1]
    finally:
        for process in processes:
            stop(process)


@pytest.fixture(scope="session", params=sorted(LAYER_BACKENDS))
def layer_environment(
    request: pytest.FixtureRequest, environment: dict[str, str]
) -> dict[str, str]:
    """The processes' environment on each channels_redis layer in turn (core, pub/sub)."""
    return {**environment, REDIS_LAYER_ENV: request.param}


@pytest.fixture(scope="session")
def servers(
    redis_dir: Path, layer_environment: dict[str, str], redis_users: RedisUsers
) -> Iterator[tuple[Server, Server]]:
    """Two uvicorn processes serving ``tests.redis.asgi_app``, sharing Redis and the DB."""
    layer = layer_environment[REDIS_LAYER_ENV]
    names = (f"uvicorn-{layer}-a", f"uvicorn-{layer}-b")
    with uvicorn_pair(redis_dir, layer_environment, APPLICATION, names) as pair:
        yield pair


ThirdProcess = Callable[..., None]


def run_command(module: str, environment: dict[str, str], *args: str, stdin: str = "") -> str:
    """Run ``python -m MODULE ARGS`` (optionally with stdin) in ``environment``; its output.

    A third process, as a view, a task or a management command would be; its failure fails
    the test.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"the third process failed ({completed.returncode}):\n{completed.stderr}")
    return completed.stdout


@pytest.fixture
def third_process(layer_environment: dict[str, str]) -> ThirdProcess:
    """Run ``python -m tests.redis.command ARGS`` (optionally with stdin) with the settings.

    On the same channels_redis layer as ``servers``.
    """

    def run(*args: str, stdin: str = "") -> None:
        run_command("tests.redis.command", layer_environment, *args, stdin=stdin)

    return run
