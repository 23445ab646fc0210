"""Over the wire: uvicorn and daphne on 127.0.0.1, a ``websockets`` client, real sockets.

The client keeps ``concurrency`` connections in flight until ``handshakes`` have completed
(or ``time_limit`` seconds have passed, whichever comes first). One handshake: open the TCP
connection and the WebSocket upgrade, receive one frame (or the middleware's close for a
rejected token), close; a client that authenticates with the first message sends it once the
upgrade is done. Latency is measured from the start of the TCP connect to the frame.

All stacks are served by the same server process on different paths. Within a round they
take turns in blocks of 160 handshakes (A B C ... A B C ...), and each stack's handshakes/s
is divided by the no-auth figure of the same round. The server's CPU time (psutil, user +
system) per handshake is reported too: on a 2-core machine the client can be the
bottleneck, and CPU per handshake shows what the server spent whatever limited the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from benchmarks.fixtures import Fixtures
from benchmarks.servers import Server, start_server, stop_server, wait_ready
from benchmarks.stacks import BY_NAME, Stack
from benchmarks.stats import median, percentile, spread, table


async def one_handshake(
    uri: str,
    stack: Stack,
    subprotocols: Sequence[str],
    headers: Sequence[tuple[bytes, bytes]],
    expected: str,
    first_frame: str | None = None,
) -> float:
    """One handshake over a real socket; returns the latency to the first frame (s)."""
    started = time.perf_counter()
    async with connect(
        uri,
        subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
        additional_headers=[(name.decode(), value.decode()) for name, value in headers],
        compression=None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=10,
    ) as ws:
        if first_frame is not None:
            await ws.send(first_frame)
        try:
            frame = await ws.recv()
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if stack.rejects_with is None or code != stack.rejects_with:
                raise AssertionError(f"{stack.name}: closed with {code}") from exc
            return time.perf_counter() - started
        latency = time.perf_counter() - started
        if stack.rejects_with is not None or frame != expected:
            raise AssertionError(f"{stack.name}: unexpected frame {frame!r}")
    return latency


async def drive(
    server: Server,
    stack: Stack,
    fixtures: Fixtures,
    *,
    handshakes: int,
    concurrency: int,
    time_limit: float,
) -> dict[str, Any]:
    """Run ``handshakes`` handshakes ``concurrency`` at a time against one stack."""
    uri = server.uri(stack.name)
    subprotocols, headers = stack.client_request(fixtures)
    expected = stack.expected_frame(fixtures)
    first_frame = stack.first_frame(fixtures)
    latencies: list[float] = []
    errors: list[str] = []
    started_count = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit

    async def worker() -> None:
        nonlocal started_count
        while started_count < handshakes and loop.time() < deadline and len(errors) < 20:
            started_count += 1
            try:
                latencies.append(
                    await one_handshake(uri, stack, subprotocols, headers, expected, first_frame)
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    cpu_before = server.cpu_seconds()
    client_before = time.process_time()
    wall_before = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "latencies": latencies,
        "errors": errors,
        "requested": handshakes,
        "elapsed_s": time.perf_counter() - wall_before,
        "client_cpu_s": time.process_time() - client_before,
        "server_cpu_s": server.cpu_seconds() - cpu_before,
    }


def merge(blocks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One stack's figures over the blocks of one round (or one block alone)."""
    latencies = [latency for block in blocks for latency in block["latencies"]]
    errors = [error for block in blocks for error in block["errors"]]
    elapsed = sum(block["elapsed_s"] for block in blocks)
    server_cpu = sum(block["server_cpu_s"] for block in blocks)
    client_cpu = sum(block["client_cpu_s"] for block in blocks)
    done = len(latencies)
    return {
        "handshakes": done,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "time_limited": done + len(errors) < sum(block["requested"] for block in blocks),
        "elapsed_s": elapsed,
        "per_s": done / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "server_cpu_pct": 100 * server_cpu / elapsed if elapsed else 0.0,
        "server_cpu_ms_per_handshake": 1000 * server_cpu / done if done else float("nan"),
        "client_cpu_pct": 100 * client_cpu / elapsed if elapsed else 0.0,
    }


async def run_wire_server(
    kind: str,
    fixtures: Fixtures,
    stack_names: Sequence[str],
    *,
    handshakes: int,
    concurrency: int,
    rounds: int,
    time_limit: float,
    warmup: int,
    block: int = 160,
) -> dict[str, Any]:
    """All rounds against one server process; the summary per stack.

    Within a round the stacks take turns in blocks of ``block`` handshakes, so a burst of
    load from elsewhere on the machine lands on every stack alike.
    """
    stacks = [BY_NAME[name] for name in stack_names]
    server = start_server(kind)
    try:
        await wait_ready(server)
        for stack in stacks:
            await drive(
                server,
                stack,
                fixtures,
                handshakes=warmup,
                concurrency=min(concurrency, warmup),
                time_limit=time_limit,
            )
        runs: dict[str, list[dict[str, Any]]] = {stack.name: [] for stack in stacks}
        blocks = max(1, handshakes // block)
        for _ in range(rounds):
            collected: dict[str, list[dict[str, Any]]] = {stack.name: [] for stack in stacks}
            for _ in range(blocks):
                for stack in stacks:
                    collected[stack.name].append(
                        await drive(
                            server,
                            stack,
                            fixtures,
                            handshakes=handshakes // blocks,
                            concurrency=concurrency,
                            time_limit=time_limit / blocks,
                        )
                    )
            for stack in stacks:
                runs[stack.name].append(merge(collected[stack.name]))
    finally:
        stop_server(server)
    return summarise(runs, stacks)


def summarise(runs: dict[str, list[dict[str, Any]]], stacks: Sequence[Stack]) -> dict[str, Any]:
    baseline = runs["noauth"]
    summary: dict[str, Any] = {}
    for stack in stacks:
        own = runs[stack.name]
        rate_ratios = [
            run["per_s"] / base["per_s"] if base["per_s"] else float("nan")
            for run, base in zip(own, baseline, strict=True)
        ]
        cpu_ratios = [
            run["server_cpu_ms_per_handshake"] / base["server_cpu_ms_per_handshake"]
            for run, base in zip(own, baseline, strict=True)
        ]
        p50_ratios = [
            run["p50_ms"] / base["p50_ms"] for run, base in zip(own, baseline, strict=True)
        ]
        low, high = spread(rate_ratios)
        summary[stack.name] = {
            "label": stack.label,
            "per_s": median([run["per_s"] for run in own]),
            "p50_ms": median([run["p50_ms"] for run in own]),
            "p99_ms": median([run["p99_ms"] for run in own]),
            "server_cpu_pct": median([run["server_cpu_pct"] for run in own]),
            "server_cpu_ms_per_handshake": median(
                [run["server_cpu_ms_per_handshake"] for run in own]
            ),
            "client_cpu_pct": median([run["client_cpu_pct"] for run in own]),
            "rate_ratio": median(rate_ratios),
            "rate_ratio_min": low,
            "rate_ratio_max": high,
            "cpu_ratio": median(cpu_ratios),
            "p50_ratio": median(p50_ratios),
            "errors": sum(run["errors"] for run in own),
            "first_error": next((run["first_error"] for run in own if run["first_error"]), None),
            "time_limited_runs": sum(1 for run in own if run["time_limited"]),
            "runs": own,
        }
    return summary


def run_wire(
    fixtures: Fixtures,
    servers: Sequence[str],
    stack_names: Sequence[str],
    **options: Any,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "handshakes_per_run": options["handshakes"],
        "concurrency": options["concurrency"],
        "rounds": options["rounds"],
        "time_limit_s": options["time_limit"],
        "block": min(options["handshakes"], options.get("block", 160)),
        "servers": {},
    }
    for kind in servers:
        results["servers"][kind] = asyncio.run(
            run_wire_server(kind, fixtures, stack_names, **options)
        )
    return results


def render_wire(result: dict[str, Any]) -> str:
    out = []
    for kind, stacks in result["servers"].items():
        rows = []
        for name, entry in stacks.items():
            flags = []
            if entry["errors"]:
                flags.append(f"{entry['errors']} errors")
            if entry["time_limited_runs"]:
                flags.append(f"{entry['time_limited_runs']} runs hit the time limit")
            rows.append(
                [
                    name,
                    f"{entry['per_s']:.0f}",
                    f"{entry['rate_ratio']:.2f}x",
                    f"{entry['rate_ratio_min']:.2f}-{entry['rate_ratio_max']:.2f}",
                    f"{entry['p50_ms']:.1f}",
                    f"{entry['p99_ms']:.1f}",
                    f"{entry['server_cpu_ms_per_handshake']:.2f}",
                    f"{entry['cpu_ratio']:.2f}x",
                    f"{entry['server_cpu_pct']:.0f}",
                    f"{entry['client_cpu_pct']:.0f}",
                    "; ".join(flags) or "ok",
                ]
            )
        title = (
            f"Over the wire, {kind}: {result['rounds']} interleaved rounds x "
            f"{result['handshakes_per_run']} handshakes per stack ({result['concurrency']} in"
            f" flight), taking turns in blocks of {result['block']}"
        )
        out.append(
            table(
                [
                    "stack",
                    "handshakes/s",
                    "ratio",
                    "ratio min-max",
                    "p50 ms",
                    "p99 ms",
                    "server CPU ms/hs",
                    "CPU ratio",
                    "server CPU %",
                    "client CPU %",
                    "status",
                ],
                rows,
                title,
            )
        )
    return "\n".join(out)
