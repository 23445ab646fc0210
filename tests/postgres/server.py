"""A throwaway PostgreSQL server for the tests: a temporary data directory, a free port.

``initdb`` and ``postgres`` refuse to run as root, so when the tests run as root (containers,
CI) every server command runs as the ``postgres`` system user through ``runuser``, in a
directory that user owns. The server listens on 127.0.0.1 only, with trust authentication,
its Unix socket inside the throwaway directory, and durability switched off (``fsync``,
``synchronous_commit``, ``full_page_writes``): the data is thrown away anyway. Readiness is a
connection poll, never a fixed sleep. :meth:`PostgresServer.stop` keeps the data, so
:meth:`~PostgresServer.start` brings the same databases back on the same port (a database
restart as production sees one); :meth:`~PostgresServer.remove` deletes everything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.processes import free_port

#: Seconds ``initdb``, a start or a stop may take before the server counts as broken.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
#: The superuser ``initdb`` creates, and the database every server has.
SUPERUSER = "postgres"
MAINTENANCE_DB = "postgres"
#: The system account that runs the server when the tests run as root.
SYSTEM_USER = "postgres"
#: Where Debian (and CI) installs the server binaries when ``pg_config`` is not on PATH.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
#: Other client connections to a database. The select list only runs for the rows the WHERE
#: clause kept, so the terminating form never ends the connection that asks.
_LIST_CLIENTS = (
    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND pid <> pg_backend_pid() AND datname = %s"
)
_TERMINATE_CLIENTS = _LIST_CLIENTS.replace("SELECT pid", "SELECT pg_terminate_backend(pid)")


class PostgresNotInstalled(RuntimeError):
    """No PostgreSQL server binaries (``initdb``, ``postgres``, ``pg_ctl``) were found."""


class PostgresFailed(RuntimeError):
    """The throwaway server could not be initialised, started or stopped."""


def find_bindir() -> Path:
    """The directory of ``initdb``, ``postgres`` and ``pg_ctl``.

    ``pg_config --bindir`` first (it names the installed server's own binaries), then the
    newest ``/usr/lib/postgresql/<N>/bin`` (Debian keeps them off PATH), then PATH itself.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        completed = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if completed.returncode == 0:
            candidates.append(Path(completed.stdout.strip()))
    if DEBIAN_ROOT.is_dir():
        versions = [p for p in DEBIAN_ROOT.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "postgres", "pg_ctl")):
            return bindir
    raise PostgresNotInstalled(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found: looked in "
        "`pg_config --bindir`, /usr/lib/postgresql/<N>/bin and PATH. Install the server "
        "(Debian/Ubuntu: apt-get install postgresql); these tests never skip."
    )


def _as_server_user() -> list[str]:
    """The command prefix that runs a server command as a non-root user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresFailed("running as root, and runuser (util-linux) is not installed")
    return [runuser, "-u", SYSTEM_USER, "--"]


class PostgresServer:
    """One throwaway PostgreSQL server on 127.0.0.1; use :func:`throwaway_postgres`."""

    def __init__(self, bindir: Path, base_dir: Path, port: int) -> None:
        self.bindir = bindir
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "postgres.log"
        self.host = "127.0.0.1"
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<PostgresServer {self.host}:{self.port} running={self.running}>"

    @property
    def running(self) -> bool:
        """Whether the postmaster this object started is still alive."""
        return self._process is not None and self._process.poll() is None

    def dsn(self, dbname: str = MAINTENANCE_DB) -> str:
        """A libpq connection string for ``dbname`` over TCP."""
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def log(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> None:
        command = [*_as_server_user(), str(self.bindir / args[0]), *args[1:]]
        completed = subprocess.run(
            command, cwd=self.base_dir, capture_output=True, text=True, timeout=timeout, check=False
        )
        if completed.returncode != 0:
            raise PostgresFailed(
                f"{args[0]} exited with {completed.returncode}:\n{completed.stdout}"
                f"{completed.stderr}\n{self.log()}"
            )

    def initdb(self) -> None:
        """Create the cluster: UTF-8, C locale, trust on 127.0.0.1 and the socket only."""
        self._run(
            "initdb",
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        # The file keeps its owner (the server user) when rewritten in place.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )

    def start(self) -> None:
        """Start the postmaster and return once it accepts connections."""
        if self.running:
            raise PostgresFailed(f"{self!r} is already running")
        options = {
            "port": str(self.port),
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.base_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
        }
        settings = [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]
        command = [*_as_server_user(), str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [*command, *settings],
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise PostgresFailed(
                    f"postgres exited with {self._process.returncode} before accepting "
                    f"connections:\n{self.log()}"
                )
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                # Refused while binding, or "the database system is starting up".
                if time.monotonic() > deadline:
                    raise PostgresFailed(
                        f"postgres not ready on {self.port} after {START_TIMEOUT}s:\n{self.log()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (``-m fast``; ``immediate`` if that hangs), keeping its data."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        for mode in ("fast", "immediate"):
            with suppress(PostgresFailed, subprocess.TimeoutExpired):
                self._run(
                    "pg_ctl",
                    "stop",
                    "--pgdata",
                    str(self.data_dir),
                    "--mode",
                    mode,
                    "--wait",
                    "--timeout",
                    str(int(STOP_TIMEOUT)),
                    timeout=STOP_TIMEOUT + 5,
                )
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT)
                return
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop and start again: same data, same port."""
        self.stop()
        self.start()

    def terminate_backends(self, dbname: str) -> int:
        """``pg_terminate_backend`` every other client connection to ``dbname``; how many."""
        return len(self._other_clients(_TERMINATE_CLIENTS, dbname))

    def client_connections(self, dbname: str) -> int:
        """How many other client connections to ``dbname`` are open right now."""
        return len(self._other_clients(_LIST_CLIENTS, dbname))

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE name`` (a plain identifier)."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def _other_clients(self, query: str, dbname: str) -> list[Any]:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            return conn.execute(query, [dbname]).fetchall()

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """A started server in a fresh directory; stopped and deleted on exit, whatever happens.

    The directory is made with :func:`tempfile.mkdtemp` (a short path: the Unix socket lives
    there, and socket paths are limited to about 100 bytes) and handed to the server user.
    """
    bindir = find_bindir()
    base_dir = Path(tempfile.mkdtemp(prefix="channels-jwt-pg-"))
    server = PostgresServer(bindir, base_dir, free_port())
    try:
        if os.geteuid() == 0:
            shutil.chown(base_dir, user=SYSTEM_USER)
        server.initdb()
        server.start()
        yield server
    finally:
        server.remove()
