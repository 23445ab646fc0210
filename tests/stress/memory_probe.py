"""Where the server memory of an idle authenticated connection goes: a measuring tool, no test.

``python -m tests.stress.memory_probe [--connections 2000] [--stacks noauth,hs256_db,...]``

The stacks are those of ``benchmarks/memory.py`` (``benchmarks.stacks``, rebuilt here on the
live servers' settings so the benchmarks' state is not touched): one consumer that accepts
and sends ``user:<pk>``, bare (``noauth``), behind ``JWTAuthMiddlewareStack`` with the default
``database_user`` (``hs256_db``) or with ``token_user`` (``hs256_token``). Clients offer
``[access_token, <HS256 token>]``, no compression, no pings; the token expires in an hour.
``--stacks noauth,hs256_db_message`` adds the token sent in the first frame instead.

Each stack gets two fresh uvicorn processes (uvloop, websockets-sansio: what ``make bench``
runs), each warmed up with 20 handshakes on every stack and 200 on its own. At 10,000
connections the three default stacks take about 5 minutes (the tracemalloc servers are the
slow part; ``--no-trace`` leaves them out):

1. **RSS**: the server's RSS before and with ``--connections`` idle connections (the median
   of five samples), in KiB per connection.
2. **tracemalloc** (``CHANNELS_JWT_PROBE_TRACEMALLOC`` set in the server, which then answers
   ``GET /probe/mark`` and ``GET /probe/report``): what the connections keep allocated, by
   allocation site (file and line), in bytes per connection, and the sites' sum; and for
   every site in ``channels_jwt`` with an object alive per connection, the objects' types
   and what holds one of them.
3. **One connection's objects**: everything reachable from one connection's task (uvicorn's
   ``run_asgi`` and everything it awaits) and not from another connection's, nor from the
   application, by type (``sys.getsizeof``: the objects' own sizes, no allocator overhead),
   plus named ones: ``scope["jwt"]``, the guard, the claims, the user, the
   scopes, the copies of the token.

It prints the stacks side by side and writes everything as JSON (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TRACE_ENV = "CHANNELS_JWT_PROBE_TRACEMALLOC"
STACKS = ("noauth", "hs256_db", "hs256_token")
#: Not measured unless asked for: the token in the first frame (``TOKEN_SOURCES`` ending in
#: ``"message"``, ``MESSAGE_FORMAT`` json), so the server keeps no copy of it in the headers.
OPTIONAL_STACKS = ("hs256_db_message",)
TOKEN_LIFETIME = 3600
REPO_ROOT = Path(__file__).resolve().parents[2]


# -- The server side: the application uvicorn serves ---------------------------------------

_routes: dict[str, Any] = {}
_mark: dict[str, Any] = {}


def _build_routes() -> dict[str, Any]:
    """The stacks, as ``benchmarks.stacks.build_stacks`` builds them (after django.setup)."""
    import django

    django.setup()
    from benchmarks.stacks import HelloConsumer
    from channels_jwt import JWTAuthMiddlewareStack

    consumer = HelloConsumer.as_asgi()
    token_user = {"USER_RESOLVER": "channels_jwt.users.token_user"}
    with_message = {"TOKEN_SOURCES": ["subprotocol", "query", "message"], "MESSAGE_FORMAT": "json"}
    return {
        "/noauth/": consumer,
        "/hs256_db/": JWTAuthMiddlewareStack(consumer),
        "/hs256_token/": JWTAuthMiddlewareStack(consumer, settings=token_user),
        "/hs256_db_message/": JWTAuthMiddlewareStack(consumer, settings=with_message),
    }


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Each stack at its path; ``/probe/mark`` and ``/probe/report`` over HTTP."""
    if not _routes:
        if os.environ.get(TRACE_ENV):
            import tracemalloc

            tracemalloc.start(int(os.environ[TRACE_ENV]))
        _routes.update(_build_routes())
    if scope["type"] == "websocket":
        await _routes[scope["path"]](scope, receive, send)
        return
    if scope["type"] != "http":
        return
    query = dict(part.split("=", 1) for part in scope["query_string"].decode().split("&") if part)
    if scope["path"] == "/probe/mark":
        body = _probe_mark()
    else:
        body = _probe_report(int(query.get("count", "1")))
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _probe_mark() -> dict[str, Any]:
    """Collect garbage; remember a tracemalloc snapshot to compare the report's with."""
    import tracemalloc

    gc.collect()
    if tracemalloc.is_tracing():
        _mark["snapshot"] = tracemalloc.take_snapshot()
    return {"tracing": tracemalloc.is_tracing()}


def _probe_report(count: int) -> dict[str, Any]:
    """What ``count`` connections keep since the mark (tracemalloc), and one's objects."""
    import tracemalloc

    gc.collect()
    report: dict[str, Any] = {"objects": _one_connection()}
    if tracemalloc.is_tracing() and "snapshot" in _mark:
        ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
        now = tracemalloc.take_snapshot().filter_traces(ignore)
        then = _mark["snapshot"].filter_traces(ignore)
        sites = now.compare_to(then, "lineno")
        report["sites"] = [
            {
                "site": f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
                "bytes": stat.size_diff / count,
                "blocks": stat.count_diff / count,
            }
            for stat in sites
            if abs(stat.size_diff) >= count * 4
        ]
        report["traced_bytes"] = sum(stat.size_diff for stat in sites) / count
        report["channels_jwt_objects"] = _objects_by_site("channels_jwt/", count)
        files = now.compare_to(then, "filename")
        report["files"] = {
            _short(stat.traceback[0].filename): stat.size_diff / count
            for stat in files
            if abs(stat.size_diff) >= count * 4
        }
    return report


def _objects_by_site(prefix: str, count: int) -> dict[str, dict[str, Any]]:
    """The live objects allocated at each site under ``prefix``: types, and what holds one."""
    import tracemalloc

    found: dict[str, Counter[str]] = defaultdict(Counter)
    sample: dict[str, Any] = {}
    seen: set[int] = set()
    for container in gc.get_objects():
        for item in (container, *gc.get_referents(container)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            traceback = tracemalloc.get_object_traceback(item)
            if traceback is None:
                continue
            site = f"{_short(traceback[0].filename)}:{traceback[0].lineno}"
            if site.startswith(prefix):
                found[site][_type_name(item)] += 1
                sample.setdefault(site, item)
    report: dict[str, dict[str, Any]] = {}
    for site, kinds in found.items():
        if sum(kinds.values()) < count / 2:
            continue  # not one per connection
        referrers = gc.get_referrers(sample[site])
        holders = Counter(_holder(referrer) for referrer in referrers if referrer is not sample)
        report[site] = {
            "per_connection": {kind: number / count for kind, number in kinds.items()},
            "held_by": sorted(holders)[:6],
        }
    sample.clear()
    return report


def _short(filename: str) -> str:
    """A file name from the package on: ``channels_jwt/middleware.py``, ``uvicorn/...``."""
    path = Path(filename)
    if path.is_relative_to(REPO_ROOT):
        return str(path.relative_to(REPO_ROOT))
    parts = path.parts
    for anchor in ("site-packages", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    return filename


_STOP_TYPES = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    asyncio.AbstractEventLoop,
)


def _reach(roots: Iterable[Any], stop: set[int]) -> dict[int, Any]:
    """Every object reachable from ``roots`` without passing a stop type or a ``stop`` id."""
    seen: dict[int, Any] = {}
    pending = list(roots)
    while pending:
        item = pending.pop()
        key = id(item)
        if key in seen or key in stop or isinstance(item, _STOP_TYPES):
            continue
        seen[key] = item
        pending.extend(gc.get_referents(item))
    return seen


def _one_connection() -> dict[str, Any]:
    """The objects of one connection only, by type and named, with ``sys.getsizeof``."""
    import logging

    from channels_jwt.connection import ConnectionGuard, JWTConnection

    tasks = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").endswith("Protocol.run_asgi")
    ]
    if len(tasks) < 2:
        return {}
    protocol = tasks[0].get_coro().cr_frame.f_locals["self"]
    shared_roots = [_routes, logging.root, logging.Logger.manager]
    for name in ("config", "server_state", "connections", "tasks", "app_state", "app", "loop"):
        if hasattr(protocol, name):
            shared_roots.append(getattr(protocol, name))
    # What the application and the server share between connections: never one's own.
    stop = {id(item) for item in shared_roots}
    stop |= set(_reach([_routes], set()))
    stop |= {id(task) for task in tasks[2:]}
    other = _reach([tasks[1]], stop | {id(tasks[0])})
    reached = _reach([tasks[0]], stop | {id(tasks[1])})
    own = {key: item for key, item in reached.items() if key not in other}
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in own.values():
        entry = by_type[_type_name(item)]
        entry[0] += 1
        entry[1] += sys.getsizeof(item)
    named: dict[str, Any] = {}

    def size(label: str, item: Any) -> None:
        named[label] = sys.getsizeof(item)

    for item in own.values():
        if isinstance(item, JWTConnection):
            size("scope['jwt'] (JWTConnection)", item)
            claims = item.claims
            size("claims: mappingproxy", claims)
            inner = gc.get_referents(claims)[0]
            size("claims: dict", inner)
            # Some values may be the interpreter's cached small ints or one-letter strings.
            named["claims: values"] = sum(sys.getsizeof(value) for value in inner.values())
        elif isinstance(item, ConnectionGuard):
            size("ConnectionGuard", item)
            if item._subscription is not None:
                named["live subscription (deep)"] = _deep(item._subscription, own)
        elif _type_name(item).endswith((".User", "TokenUser")):
            named[f"user: {_type_name(item)} (deep, own objects only)"] = _deep(item, own)
        elif isinstance(item, dict) and item.get("type") == "websocket":
            kind = "the application's copy" if "jwt" in item else "uvicorn's"
            size(f"scope, {kind}: dict of {len(item)} keys (shallow)", item)
        elif isinstance(item, list) and item and isinstance(item[0], tuple):
            if all(isinstance(pair, tuple) and len(pair) == 2 for pair in item):
                lists = named.setdefault("lists of (name, value) headers: lengths, bytes", [])
                lists.append((len(item), sys.getsizeof(item)))
        elif isinstance(item, types.CoroutineType):
            named[f"coroutine {item.__qualname__}"] = sys.getsizeof(item)
    tokens = [
        item
        for item in own.values()
        if isinstance(item, (str, bytes)) and len(item) > 100 and "eyJ" in str(item)[:40]
    ]
    named["token copies"] = f"{len(tokens)}: " + ", ".join(
        f"{type(item).__name__} {sys.getsizeof(item)}" for item in tokens
    )
    return {
        "total_bytes": sum(entry[1] for entry in by_type.values()),
        "objects": len(own),
        "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1][1])),
        "named": named,
    }


def _holder(referrer: Any) -> str:
    """What keeps an object alive, for the report: a type, and a frame's function."""
    if isinstance(referrer, types.FrameType):
        return f"frame of {getattr(referrer.f_code, 'co_qualname', referrer.f_code.co_name)}"
    if isinstance(referrer, (types.CoroutineType, types.GeneratorType)):
        return f"{type(referrer).__name__} {referrer.__qualname__}"
    return _type_name(referrer)


def _deep(root: Any, own: dict[int, Any]) -> int:
    """The size of ``root`` and what it reaches among ``own`` (this connection's objects)."""
    reached = _reach([root], set())
    return sum(sys.getsizeof(item) for key, item in reached.items() if key in own)


def _type_name(item: Any) -> str:
    kind = type(item)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


# -- The client side: servers, connections, the report --------------------------------------


def _environment(directory: Path, trace: bool) -> dict[str, str]:
    from tests.live.server_settings import LIVE_DIR_ENV

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.live.server_settings",
        LIVE_DIR_ENV: str(directory),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop(TRACE_ENV, None)
    if trace:
        env[TRACE_ENV] = "1"
    return env


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=600) as response:
        return json.loads(response.read())


def _measure(
    directory: Path, stack: str, count: int, token: str, user_pk: int, trace: bool
) -> dict[str, Any]:
    """One fresh server: warm up, mark, open ``count`` idle connections, measure."""
    from tests.processes import free_port, stop, wait_until_listening

    port = free_port()
    log_path = directory / f"uvicorn-{stack}-{int(trace)}.log"
    command = [
        *(sys.executable, "-m", "uvicorn", "tests.stress.memory_probe:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        *("--no-access-log", "--lifespan", "off", "--backlog", "4096"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=_environment(directory, trace),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(process, port, log_path)
        return asyncio.run(_drive(process.pid, port, stack, count, token, user_pk))
    finally:
        stop(process)


async def _drive(
    pid: int, port: int, stack: str, count: int, token: str, user_pk: int
) -> dict[str, Any]:
    from websockets.asyncio.client import ClientConnection, connect

    async def one(path: str) -> ClientConnection:
        in_header = path not in ("noauth", "hs256_db_message")
        ws = await connect(
            f"ws://127.0.0.1:{port}/{path}/",
            subprotocols=["access_token", token] if in_header else None,  # type: ignore[list-item]
            compression=None,
            ping_interval=None,
            open_timeout=60,
        )
        if path == "hs256_db_message":
            await ws.send(json.dumps({"type": "authenticate", "token": token}))
        frame = await asyncio.wait_for(ws.recv(), 30)
        assert frame == ("user:-" if path == "noauth" else f"user:{user_pk}"), frame
        return ws

    held: list[ClientConnection] = []
    try:
        for path in [*STACKS, *[stack] * 10]:
            for ws in await asyncio.gather(*(one(path) for _ in range(20))):
                await ws.close()
        await asyncio.to_thread(_get, port, "/probe/mark")
        await asyncio.sleep(1)
        baseline = _rss_kib(pid)
        gate = asyncio.Semaphore(64)

        async def hold() -> None:
            async with gate:
                held.append(await one(stack))

        await asyncio.gather(*(hold() for _ in range(count)))
        await asyncio.sleep(2)
        samples = []
        for _ in range(5):
            samples.append(_rss_kib(pid))
            await asyncio.sleep(0.4)
        loaded = statistics.median(samples)
        report = await asyncio.to_thread(_get, port, f"/probe/report?count={count}")
        assert all(ws.state.name == "OPEN" for ws in held), "a connection closed early"
    finally:
        for ws in held:
            ws.transport.abort()
    return {
        "baseline_mib": baseline / 1024,
        "loaded_mib": loaded / 1024,
        "kib_per_connection": (loaded - baseline) / count,
        **report,
    }


def _print_report(results: dict[str, dict[str, Any]], count: int) -> None:
    stacks = list(results)
    print(f"\nServer RSS with {count} idle connections (no tracemalloc)")
    for stack in stacks:
        rss = results[stack]["rss"]
        print(
            f"  {stack:12} before {rss['baseline_mib']:.1f} MiB, loaded {rss['loaded_mib']:.1f}"
            f" MiB, {rss['kib_per_connection']:.2f} KiB/conn"
        )
    traced = {stack: results[stack]["trace"] for stack in stacks}
    if all("traced_bytes" in entry for entry in traced.values()):
        print("\ntracemalloc, bytes per connection by file (kept since the mark)")
        files = sorted(
            {name for entry in traced.values() for name in entry["files"]},
            key=lambda name: -max(abs(entry["files"].get(name, 0)) for entry in traced.values()),
        )
        print("  " + "".join(f"{stack:>13}" for stack in stacks) + "  file")
        for name in files[:30]:
            row = "".join(f"{traced[stack]['files'].get(name, 0):13.0f}" for stack in stacks)
            print(f"  {row}  {name}")
        row = "".join(f"{traced[stack]['traced_bytes']:13.0f}" for stack in stacks)
        print(f"  {row}  (all)")
        print("\ntracemalloc, bytes per connection by site, each stack less noauth's")
        base = {site["site"]: site["bytes"] for site in traced.get("noauth", {}).get("sites", [])}
        for stack in stacks:
            if stack == "noauth":
                continue
            sites: Counter[str] = Counter()
            sites.update({site["site"]: site["bytes"] for site in traced[stack]["sites"]})
            sites.subtract(base)
            print(f"  {stack}:")
            for site, size in sorted(sites.items(), key=lambda kv: -abs(kv[1]))[:25]:
                if abs(size) >= 8:
                    print(f"    {size:+8.0f}  {site}")
    for stack in stacks:
        where = traced[stack].get("channels_jwt_objects") if traced else None
        if where:
            print(f"\nLive objects allocated in channels_jwt, per connection: {stack}")
            for site, entry in sorted(where.items()):
                kinds = ", ".join(f"{n:.2f} {kind}" for kind, n in entry["per_connection"].items())
                print(f"  {site}: {kinds}; held by {', '.join(entry['held_by'])}")
    print("\nOne connection's own objects (sys.getsizeof; from its task, not shared)")
    for stack in stacks:
        objects = results[stack]["trace"]["objects"] or results[stack]["rss"]["objects"]
        if not objects:
            continue
        print(f"  {stack}: {objects['objects']} objects, {objects['total_bytes']} bytes")
        for name, (number, size) in list(objects["by_type"].items())[:18]:
            print(f"    {size:7d} B  {number:4d} x {name}")
        for name, value in objects["named"].items():
            print(f"    {name}: {value}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--no-trace", action="store_true", help="RSS and objects only")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    stacks = [name for name in args.stacks.split(",") if name]

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 1024
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    import jwt

    from tests.live.server_settings import SIGNING_KEY
    from tests.processes import create_users

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="memory-probe-") as name:
        directory = Path(name)
        user_pk = create_users(_environment(directory, False), {"probe": {}})["probe"]
        now = int(time.time())
        # The benchmarks' claims (simplejwt's shape), expiring in an hour.
        claims = {
            "token_type": "access",
            "user_id": str(user_pk),
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, SIGNING_KEY, algorithm="HS256")
        for stack in stacks:
            started = time.perf_counter()
            entry = results[stack] = {}
            entry["rss"] = _measure(directory, stack, args.connections, token, user_pk, False)
            if not args.no_trace:
                entry["trace"] = _measure(directory, stack, args.connections, token, user_pk, True)
            else:
                entry["trace"] = {"objects": {}}
            print(f"{stack}: {time.perf_counter() - started:.0f}s", flush=True)
    _print_report(results, args.connections)
    if args.output:
        args.output.write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
