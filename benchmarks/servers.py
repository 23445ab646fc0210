"""Start and stop uvicorn and daphne on 127.0.0.1 serving :mod:`benchmarks.asgi`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
from websockets.asyncio.client import connect

from benchmarks.fixtures import STATE_DIR

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("uvicorn", "daphne")


@dataclass
class Server:
    """A running server process and what is needed to talk to it and measure it."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.process.pid)

    def uri(self, stack_name: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{stack_name}/"

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(kind: str, port: int) -> list[str]:
    """The command line of a quiet, single-process server."""
    if kind == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
            "--backlog",
            "4096",
        ]
    if kind == "daphne":
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "-v",
            "0",
            "benchmarks.asgi:application",
        ]
    raise ValueError(f"unknown server {kind!r}")


def start_server(kind: str) -> Server:
    """Start ``kind`` on a free port (not yet ready: see :func:`wait_ready`)."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log_path = STATE_DIR / f"{kind}-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command(kind, port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return Server(kind, port, process, log_path, log)


async def wait_ready(server: Server, timeout: float = 60) -> None:
    """Poll until a WebSocket handshake on ``/noauth/`` succeeds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.kind} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            async with connect(server.uri("noauth"), open_timeout=2, compression=None) as ws:
                if await asyncio.wait_for(ws.recv(), 2) == "user:-":
                    return
        except (OSError, asyncio.TimeoutError, Exception) as exc:
            last_error = exc
        await asyncio.sleep(0.1)
    stop_server(server, kill=True)
    raise RuntimeError(f"{server.kind} not ready after {timeout}s ({last_error!r})")


def stop_server(server: Server, *, kill: bool = False) -> None:
    """Stop the server (SIGKILL at once with ``kill``: nothing to flush, no graceful close)."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    server.log.close()
    server.log_path.unlink(missing_ok=True)


def describe_servers() -> dict[str, Any]:
    """Which implementations the servers pick (uvicorn's "auto" choices)."""
    info: dict[str, Any] = {}
    try:
        import uvloop  # noqa: F401

        info["uvicorn_loop"] = "uvloop"
    except ImportError:
        info["uvicorn_loop"] = "asyncio"
    try:
        import httptools  # noqa: F401

        info["uvicorn_http"] = "httptools"
    except ImportError:
        info["uvicorn_http"] = "h11"
    info["uvicorn_ws"] = "websockets-sansio (uvicorn's auto choice)"
    info["daphne"] = "Twisted + autobahn"
    return info
