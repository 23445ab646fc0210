"""Server memory with many idle connections: authenticated versus unauthenticated.

Each scenario gets a fresh server process (Python rarely returns freed memory, so reusing
one would blur the comparison). The server is warmed up with a few handshakes on every
compared stack's path (so one-time costs, such as the lazy import of simplejwt's settings
on the first authenticated handshake when simplejwt is installed, land in every baseline
alike) and then on the scenario's own path; its RSS is read ("baseline"), then ``count``
connections are opened and left idle (each one received its greeting frame; authenticated
ones hold a token whose ``exp`` is an hour ahead, so every one has its expiry timer armed),
and RSS is read again ("loaded", the median of several samples after a pause). The ratio
compares loaded RSS to the no-auth scenario on the same server; the per-connection delta is
reported beside it.

The RSS targets are judged at 10,000 idle sockets (``MEMORY_TARGET_CONNECTIONS`` in
:mod:`benchmarks.run`; the full mode's count, on uvicorn and daphne alike: each server's three
scenarios take 40-55 s here). Both ends live on this machine, each process holding one
descriptor per socket: :func:`usable_connections` raises the soft open-file limit to the count
plus 1,024 (the servers inherit it) and, if the hard limit is lower, holds fewer sockets, which
the table's title and the targets (then indicative) say.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from benchmarks.fixtures import Fixtures
from benchmarks.servers import start_server, stop_server, wait_ready
from benchmarks.stacks import BY_NAME
from benchmarks.stats import median, table
from benchmarks.wire import drive


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def usable_connections(wanted: int) -> int:
    """How many idle connections this process can hold (both ends are on this machine)."""
    limit = raise_open_file_limit(wanted + 1024)
    return max(0, min(wanted, limit - 256))


async def scenario(
    kind: str,
    stack_name: str,
    fixtures: Fixtures,
    count: int,
    open_concurrency: int,
    warm_stacks: Sequence[str] = (),
) -> dict[str, Any]:
    stack = BY_NAME[stack_name]
    subprotocols, headers = stack.client_request(fixtures)
    expected = stack.expected_frame(fixtures)
    first_frame = stack.first_frame(fixtures)
    server = start_server(kind)
    held: list[ClientConnection] = []
    failures: list[str] = []
    try:
        await wait_ready(server)
        for name in warm_stacks:
            await drive(
                server, BY_NAME[name], fixtures, handshakes=20, concurrency=4, time_limit=60
            )
        await drive(server, stack, fixtures, handshakes=200, concurrency=8, time_limit=60)
        await asyncio.sleep(1)
        baseline = server.rss()
        gate = asyncio.Semaphore(open_concurrency)

        async def open_one() -> None:
            async with gate:
                try:
                    ws = await connect(
                        server.uri(stack.name),
                        subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
                        additional_headers=[(n.decode(), v.decode()) for n, v in headers],
                        compression=None,
                        ping_interval=None,
                        open_timeout=60,
                    )
                    if first_frame is not None:
                        await ws.send(first_frame)
                    frame = await asyncio.wait_for(ws.recv(), 30)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
                held.append(ws)
                if frame != expected:
                    failures.append(f"unexpected frame {frame!r}")

        await asyncio.gather(*(open_one() for _ in range(count)))
        await asyncio.sleep(2)
        samples = []
        for _ in range(5):
            samples.append(server.rss())
            await asyncio.sleep(0.4)
        loaded = median(samples)
    finally:
        stop_server(server, kill=True)
        for ws in held:
            ws.transport.abort()
    opened = len(held)
    return {
        "server": kind,
        "stack": stack_name,
        "requested": count,
        "opened": opened,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
        "baseline_rss_mib": baseline / 2**20,
        "loaded_rss_mib": loaded / 2**20,
        "per_connection_kib": (loaded - baseline) / 1024 / opened if opened else float("nan"),
    }


def run_memory(
    fixtures: Fixtures,
    servers: Sequence[str],
    stack_names: Sequence[str],
    *,
    count: int,
    open_concurrency: int = 64,
) -> dict[str, Any]:
    usable = usable_connections(count)
    results: dict[str, Any] = {
        "requested": count,
        "connections": usable,
        "open_file_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
        "servers": {},
    }
    for kind in servers:
        by_stack = {}
        for name in stack_names:
            by_stack[name] = asyncio.run(
                scenario(kind, name, fixtures, usable, open_concurrency, stack_names)
            )
        base = by_stack["noauth"]
        for entry in by_stack.values():
            entry["rss_ratio"] = entry["loaded_rss_mib"] / base["loaded_rss_mib"]
            entry["per_connection_ratio"] = entry["per_connection_kib"] / base["per_connection_kib"]
        results["servers"][kind] = by_stack
    return results


def render_memory(result: dict[str, Any]) -> str:
    rows = []
    for kind, by_stack in result["servers"].items():
        for name, entry in by_stack.items():
            rows.append(
                [
                    kind,
                    name,
                    f"{entry['opened']}",
                    f"{entry['baseline_rss_mib']:.1f}",
                    f"{entry['loaded_rss_mib']:.1f}",
                    f"{entry['rss_ratio']:.2f}x",
                    f"{entry['per_connection_kib']:.1f}",
                    f"{entry['per_connection_ratio']:.2f}x",
                    str(entry["failures"]),
                ]
            )
    title = f"Server memory with {result['connections']:,} idle connections"
    if result["connections"] < result["requested"]:
        title += f" (requested {result['requested']:,}; the open-file limit allows no more)"
    return table(
        [
            "server",
            "stack",
            "open",
            "RSS before MiB",
            "RSS loaded MiB",
            "RSS ratio",
            "KiB/conn",
            "KiB/conn ratio",
            "failures",
        ],
        rows,
        title,
    )
