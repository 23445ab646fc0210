"""Reconnect storms: thousands of clients at once against a freshly started server.

What a deploy looks like from the server's side: the old process goes away, every client
reconnects, and the new process has to authenticate all of them at once. Each storm starts a
fresh server (uvicorn or daphne, one process on 127.0.0.1), waits until a handshake on
``/noauth/`` succeeds, then releases ``clients`` connections at once from this process: one
asyncio task per client (on uvloop when installed, the client's own overhead being part of
every figure alike), all parked on one event and released together, so the SYNs, the upgrades
and the lookups all arrive in the same instant. Every client is a different user with its own
token (or session cookie), so a database lookup is never the same row twice.

Per client: the time from the release to its first application frame (the consumer's
greeting, ``user:<pk>``, checked), or what went wrong (refused, timeout, reset, dropped before
the upgrade, an HTTP status instead of the upgrade, a close code). Per storm: the time until
every client was authenticated (the slowest one), p50/p99, the errors, and the server's CPU
seconds (psutil, user + system, all threads) from the release until the last client finished.
Clients stay connected until the storm is over (they came to stay), then the sockets are
aborted and the server is killed.

Variants: no auth (the baseline), channels' ``AuthMiddlewareStack`` with a session cookie,
``database_user`` on SQLite and on PostgreSQL (a throwaway server, :mod:`tests.postgres.server`)
with ``CONN_MAX_AGE`` 0 and 60, and ``token_user``. Rounds are interleaved (every variant's
round 1, then round 2, ..., each round starting one variant later), and each ratio is taken
against the no-auth storm of the same round on the same server; the medians are reported.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from benchmarks.fixtures import STATE_DIR, claims
from benchmarks.memory import raise_open_file_limit
from benchmarks.servers import ROOT, Server, command, free_port, stop_server, wait_ready
from benchmarks.stats import median, percentile, spread, table

#: The listen backlog of both servers. uvicorn gets it from ``benchmarks.servers`` already;
#: daphne (Twisted) listens with 50 unless told, and a storm then overflows the accept queue
#: at once: the kernel drops the SYNs and the clients retry after 1 s, 3 s, 7 s (see the docs).
BACKLOG = 4096
#: The PostgreSQL database the storm's throwaway server holds.
POSTGRES_DATABASE = "channels_jwt_bench"
#: Lines of a server log that count as problems.
_LOG_PROBLEM = re.compile(r"Traceback|^(WARNING|ERROR|CRITICAL)\b|\b(ERROR|CRITICAL)\b", re.M)


@dataclass(frozen=True)
class Variant:
    """One storm configuration: which path, which database, which ``CONN_MAX_AGE``."""

    name: str
    #: The stack's path on the server (:mod:`benchmarks.stacks`).
    stack: str
    label: str
    #: "none", "session" or "token": what each client presents.
    credential: str
    #: "sqlite" (the run's file) or "postgresql" (the throwaway server).
    database: str = "sqlite"
    #: ``None``: the run's (``BENCH_CONN_MAX_AGE``, 0 unless set).
    conn_max_age: int | None = None


def _database_user(database: str, conn_max_age: int) -> Variant:
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[database]
    return Variant(
        f"db_{'pg' if database == 'postgresql' else database}_{conn_max_age}",
        "hs256_db",
        f"database_user, {name}, CONN_MAX_AGE={conn_max_age}",
        "token",
        database,
        conn_max_age,
    )


VARIANTS: tuple[Variant, ...] = (
    Variant("noauth", "noauth", "no auth (baseline)", "none"),
    Variant("session", "session", "channels AuthMiddlewareStack, session cookie", "session"),
    _database_user("sqlite", 0),
    _database_user("sqlite", 60),
    _database_user("postgresql", 0),
    _database_user("postgresql", 60),
    Variant("hs256_token", "hs256_token", "token_user (stateless)", "token"),
)
BY_NAME = {variant.name: variant for variant in VARIANTS}


@dataclass(frozen=True)
class ClientRequest:
    """What one client offers, and the greeting it must get."""

    subprotocols: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    expected: str


# -- Users: one per client ------------------------------------------------------------------


def populate(count: int, *, sessions: bool) -> dict[str, list[Any]]:
    """``count`` active users (``storm-00000``...) and, with ``sessions``, a session each.

    In the database Django is configured for; bulk inserts (the users get an unusable
    password: nothing to hash, and the session hash is an HMAC of it). Returns ``{"pks": [...],
    "session_keys": [...]}`` in client order.
    """
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    user_model = get_user_model()
    names = [f"storm-{n:05d}" for n in range(count)]
    user_model.objects.bulk_create(
        [user_model(username=name, password=make_password(None)) for name in names],
        batch_size=500,
    )
    by_name = {user.username: user for user in user_model.objects.filter(username__in=names)}
    users = [by_name[name] for name in names]
    session_keys: list[str] = []
    if sessions:
        store = SessionStore()
        expires = timezone.now() + timedelta(days=1)
        rows = []
        for user in users:
            key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
            data = {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
            rows.append(
                Session(session_key=key, session_data=store.encode(data), expire_date=expires)
            )
            session_keys.append(key)
        Session.objects.bulk_create(rows, batch_size=500)
    return {"pks": [user.pk for user in users], "session_keys": session_keys}


def _populate_main(count: int) -> None:
    """``python -m benchmarks.storm populate COUNT``: migrate, create the users, print pks."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    print(json.dumps(populate(count, sessions=False)["pks"]))


def server_environment(variant: Variant, postgres_port: int | None) -> dict[str, str]:
    """The environment a variant's server (and the PostgreSQL set-up) runs with."""
    from benchmarks.settings import POSTGRES_NAME_ENV, POSTGRES_PORT_ENV

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop(POSTGRES_PORT_ENV, None)
    if variant.conn_max_age is not None:
        env["BENCH_CONN_MAX_AGE"] = str(variant.conn_max_age)
    if variant.database == "postgresql":
        assert postgres_port is not None
        env[POSTGRES_PORT_ENV] = str(postgres_port)
        env[POSTGRES_NAME_ENV] = POSTGRES_DATABASE
    return env


def populate_postgres(count: int, port: int) -> list[int]:
    """Migrate the throwaway server's database and create the users, in a subprocess."""
    env = server_environment(BY_NAME["db_pg_0"], port)
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.storm", "populate", str(count)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"PostgreSQL set-up failed:\n{completed.stderr}")
    pks: list[int] = json.loads(completed.stdout.strip().splitlines()[-1])
    return pks


@contextmanager
def postgres_server() -> Iterator[tuple[Any, str]]:
    """The test suite's throwaway PostgreSQL server (``tests/postgres/server.py``)."""
    from tests.postgres.server import throwaway_postgres

    with throwaway_postgres() as postgres:
        postgres.create_database(POSTGRES_DATABASE)
        yield postgres, postgres.bindir.parent.name


def requests_for(
    variant: Variant, population: dict[str, list[Any]], tokens: list[str]
) -> list[ClientRequest]:
    """One request per client for ``variant``."""
    if variant.credential == "none":
        return [ClientRequest((), (), "user:-") for _ in population["pks"]]
    if variant.credential == "session":
        return [
            ClientRequest((), (("Cookie", f"sessionid={key}"),), f"user:{pk}")
            for pk, key in zip(population["pks"], population["session_keys"], strict=True)
        ]
    return [
        ClientRequest(("access_token", token), (), f"user:{pk}")
        for pk, token in zip(population["pks"], tokens, strict=True)
    ]


def mint(pks: Sequence[int], keys: dict[str, Any]) -> list[str]:
    """One HS256 access token per user (an hour's lifetime)."""
    return [jwt.encode(claims(pk), keys["hs256"], algorithm="HS256") for pk in pks]


# -- One storm --------------------------------------------------------------------------------


def storm_command(kind: str, port: int) -> list[str]:
    """The servers' usual command line, daphne's listen backlog raised to :data:`BACKLOG`."""
    argv = command(kind, port)
    if kind == "daphne":
        bind = argv.index("-b")
        assert argv[bind : bind + 4] == ["-b", "127.0.0.1", "-p", str(port)]
        argv[bind : bind + 4] = ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={BACKLOG}"]
    return argv


def start(kind: str, env: dict[str, str]) -> Server:
    """Start ``kind`` on a free port with ``env`` (not yet ready: see ``wait_ready``)."""
    port = free_port()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log_path = STATE_DIR / f"storm-{kind}-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        storm_command(kind, port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return Server(kind, port, process, log_path, log)


def classify(exc: BaseException) -> str:
    """A short name for what went wrong with one client."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        code = exc.rcvd.code if exc.rcvd is not None else None
        return "reset" if code is None else f"closed {code}"
    if isinstance(exc, InvalidMessage):  # the server closed before its HTTP response
        return "dropped before the upgrade"
    if isinstance(exc, (ConnectionResetError, EOFError)):
        return "reset"
    if isinstance(exc, OSError):
        return f"OSError {exc.errno}"
    return type(exc).__name__


async def storm(
    server: Server, variant: Variant, requests: Sequence[ClientRequest], timeout: float
) -> dict[str, Any]:
    """Release every client at once; per-client latencies, errors, server CPU."""
    uri = server.uri(variant.stack)
    release = asyncio.Event()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    first_error: list[str] = []
    held: list[ClientConnection] = []
    began = 0.0

    async def client(request: ClientRequest) -> None:
        await release.wait()
        try:
            ws = await connect(
                uri,
                subprotocols=list(request.subprotocols) or None,  # type: ignore[arg-type]
                additional_headers=list(request.headers),
                compression=None,
                ping_interval=None,
                open_timeout=None,  # the storm's own timeout, below
                close_timeout=1,
            )
            held.append(ws)
            frame = await ws.recv()
        except Exception as exc:
            errors[classify(exc)] += 1
            if not first_error:
                first_error.append(f"{type(exc).__name__}: {exc}")
            return
        if frame != request.expected:
            errors["wrong frame"] += 1
            if not first_error:
                first_error.append(f"unexpected frame {frame!r}")
            return
        latencies.append(time.perf_counter() - began)

    tasks = [asyncio.create_task(client(request)) for request in requests]
    await asyncio.sleep(0.05)  # every task parked on the event
    gc.collect()
    gc.disable()  # no client-side collection pauses inside the storm
    pending: set[asyncio.Task[None]] = set(tasks)
    try:
        cpu_before = server.cpu_seconds()
        client_before = time.process_time()
        busy_before = busy_seconds()
        began = time.perf_counter()
        release.set()
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        elapsed = time.perf_counter() - began
        client_cpu = time.process_time() - client_before
        server_cpu = server.cpu_seconds() - cpu_before
        other_cpu = busy_seconds() - busy_before - client_cpu - server_cpu
    finally:
        gc.enable()
        for task in pending:  # still waiting at the storm's timeout
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for ws in held:
            ws.transport.abort()
    if pending:
        errors["timeout"] += len(pending)
        if not first_error:
            first_error.append(f"no greeting after {timeout:.0f} s")
    done = len(latencies)
    return {
        "clients": len(requests),
        "authenticated": done,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "first_error": first_error[0] if first_error else None,
        # With errors: until every client that made it was (the status column says so).
        "all_s": max(latencies) if latencies else float("nan"),
        "elapsed_s": elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
        # CPUs busy with anything else meanwhile (other work on the machine; PostgreSQL).
        "other_cpus": max(0.0, other_cpu) / elapsed,
    }


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all CPUs)."""
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


async def one_storm(
    kind: str,
    variant: Variant,
    requests: Sequence[ClientRequest],
    env: dict[str, str],
    timeout: float,
) -> dict[str, Any]:
    """A fresh server, ready, one storm, the server killed."""
    spawned = time.perf_counter()
    server = start(kind, env)
    try:
        await wait_ready(server)
        ready_s = time.perf_counter() - spawned
        await asyncio.sleep(0.25)  # the readiness probe's close is done with
        result = await storm(server, variant, requests, timeout)
        await asyncio.sleep(0.1)  # the server's last log lines
        server.log.flush()
        problems = _LOG_PROBLEM.findall(server.log_path.read_text(errors="replace"))
        result["server_log_problems"] = len(problems)
        if problems:
            result["server_log_tail"] = server.log_tail(15)
        result["ready_s"] = ready_s
        result["server_rss_mib"] = server.rss() / 2**20
    finally:
        stop_server(server, kill=True)
    await asyncio.sleep(0.2)  # aborted transports closed, the kernel done with the sockets
    return result


# -- The section ------------------------------------------------------------------------------


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def client_loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_storm(
    keys: dict[str, Any],
    servers: Sequence[str],
    variant_names: Sequence[str],
    *,
    clients: int,
    rounds: int,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Every variant's storm on every server, ``rounds`` interleaved rounds; the summary."""
    names = ["noauth", *(name for name in variant_names if name != "noauth")]
    variants = [BY_NAME[name] for name in names]
    timeout = timeout if timeout is not None else max(60.0, clients / 50)
    open_files = raise_open_file_limit(clients + 1024)
    results: dict[str, Any] = {
        "clients": clients,
        "rounds": rounds,
        "timeout_s": timeout,
        "backlog": BACKLOG,
        "client_loop": client_loop_name(),
        "open_file_limit": open_files,
        "variants": {v.name: {"label": v.label, "stack": v.stack} for v in variants},
        "skipped": {},
        "servers": {},
    }
    if open_files < clients + 256:
        raise SystemExit(f"storm: {clients} clients need an open-file limit above {clients + 256}")
    began = time.perf_counter()
    sqlite = populate(clients, sessions=any(v.credential == "session" for v in variants))
    from django.db import connections

    connections.close_all()
    populations = {"sqlite": (sqlite, mint(sqlite["pks"], keys))}
    with ExitStack() as stack:
        postgres_port = None
        if any(v.database == "postgresql" for v in variants):
            from tests.postgres.server import PostgresNotInstalled, find_bindir

            try:
                find_bindir()
            except PostgresNotInstalled as exc:
                for v in variants:
                    if v.database == "postgresql":
                        results["skipped"][v.name] = str(exc)
                print(f"   PostgreSQL variants skipped: {exc}")
                variants = [v for v in variants if v.database != "postgresql"]
            else:
                postgres, version = stack.enter_context(postgres_server())
                postgres_port = postgres.port
                results["postgresql"] = version
                pks = populate_postgres(clients, postgres.port)
                populations["postgresql"] = ({"pks": pks, "session_keys": []}, mint(pks, keys))
        requests = {v.name: requests_for(v, *populations[v.database]) for v in variants}
        envs = {v.name: server_environment(v, postgres_port) for v in variants}
        results["setup_s"] = round(time.perf_counter() - began, 1)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            kind: {v.name: [] for v in variants} for kind in servers
        }
        loop = _new_loop()
        stack.callback(loop.close)
        for number in range(rounds):
            for kind in servers:
                shift = number % len(variants)
                line = []
                for v in variants[shift:] + variants[:shift]:
                    result = loop.run_until_complete(
                        one_storm(kind, v, requests[v.name], envs[v.name], timeout)
                    )
                    runs[kind][v.name].append(result)
                    errors = f" ({result['errors']} errors)" if result["errors"] else ""
                    line.append(f"{v.name} {result['all_s']:.2f}s{errors}")
                print(f"   round {number + 1}/{rounds}, {kind}: " + ", ".join(line), flush=True)
    for kind in servers:
        results["servers"][kind] = summarise(runs[kind], variants)
    return results


def summarise(runs: dict[str, list[dict[str, Any]]], variants: Sequence[Variant]) -> dict[str, Any]:
    """Medians over rounds; ratios to the no-auth storm of the same round."""
    baseline = runs["noauth"]
    summary: dict[str, Any] = {}

    def ratios(own: list[dict[str, Any]], key: str) -> list[float]:
        return [
            run[key] / base[key] if base[key] else float("nan")
            for run, base in zip(own, baseline, strict=True)
        ]

    for v in variants:
        own = runs[v.name]
        all_ratios = ratios(own, "all_s")
        low, high = spread(all_ratios)
        errors: Counter[str] = Counter()
        for run in own:
            errors.update(run["error_kinds"])
        summary[v.name] = {
            "label": v.label,
            "stack": v.stack,
            "database": v.database,
            "conn_max_age": v.conn_max_age,
            "all_s": median([run["all_s"] for run in own]),
            "p50_ms": median([run["p50_ms"] for run in own]),
            "p99_ms": median([run["p99_ms"] for run in own]),
            "server_cpu_s": median([run["server_cpu_s"] for run in own]),
            "client_cpu_s": median([run["client_cpu_s"] for run in own]),
            "other_cpus": median([run["other_cpus"] for run in own]),
            "ready_s": median([run["ready_s"] for run in own]),
            "all_ratio": median(all_ratios),
            "all_ratio_min": low,
            "all_ratio_max": high,
            "p50_ratio": median(ratios(own, "p50_ms")),
            "p99_ratio": median(ratios(own, "p99_ms")),
            "cpu_ratio": median(ratios(own, "server_cpu_s")),
            "errors": sum(run["errors"] for run in own),
            "error_kinds": dict(errors),
            "first_error": next((run["first_error"] for run in own if run["first_error"]), None),
            "incomplete_rounds": sum(1 for run in own if run["authenticated"] < run["clients"]),
            "server_log_problems": sum(run["server_log_problems"] for run in own),
            "runs": own,
        }
    return summary


def render_storm(result: dict[str, Any]) -> str:
    out = []
    for kind, variants in result["servers"].items():
        rows = []
        for name, entry in variants.items():
            flags = []
            if entry["errors"]:
                kinds = ", ".join(f"{n} {k}" for k, n in sorted(entry["error_kinds"].items()))
                flags.append(f"{entry['errors']} errors ({kinds})")
            if entry["server_log_problems"]:
                flags.append(f"{entry['server_log_problems']} problems in the server log")
            rows.append(
                [
                    name,
                    entry["label"],
                    f"{entry['all_s']:.2f}",
                    f"{entry['all_ratio']:.2f}x",
                    f"{entry['all_ratio_min']:.2f}-{entry['all_ratio_max']:.2f}",
                    f"{entry['p50_ms']:.0f}",
                    f"{entry['p99_ms']:.0f}",
                    f"{entry['p99_ratio']:.2f}x",
                    f"{entry['server_cpu_s']:.2f}",
                    f"{entry['cpu_ratio']:.2f}x",
                    f"{entry['client_cpu_s']:.2f}",
                    f"{entry['other_cpus']:.2f}",
                    "; ".join(flags) or "ok",
                ]
            )
        title = (
            f"Reconnect storm, {kind}: {result['clients']:,} clients released at once on a"
            f" freshly started server, {result['rounds']} interleaved"
            f" round{'s' if result['rounds'] != 1 else ''} (medians; ratios to the no-auth storm"
            " of the same round)"
        )
        out.append(
            table(
                [
                    "stack",
                    "what",
                    "all authenticated s",
                    "ratio",
                    "ratio min-max",
                    "p50 ms",
                    "p99 ms",
                    "p99 ratio",
                    "server CPU s",
                    "CPU ratio",
                    "client CPU s",
                    "other CPUs",
                    "status",
                ],
                rows,
                title,
            )
        )
    for name, reason in result["skipped"].items():
        out.append(f"{name}: not run ({reason.splitlines()[0]})")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["populate"] and len(sys.argv) == 3:
        _populate_main(int(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m benchmarks.storm populate COUNT (run.py runs storms)")
