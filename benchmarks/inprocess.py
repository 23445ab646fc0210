"""In-process handshakes through channels' ``WebsocketCommunicator``, stack by stack.

One handshake is: connect, receive one frame (the consumer's greeting, or the middleware's
close for a rejected token), disconnect; a client that authenticates with the first message
sends it between the connect and the receive. Each round runs ``handshakes`` of them for every
stack, the stacks taking turns in blocks of ten (A B C ... A B C ...), so slow drifts and
bursts of load on the machine hit every stack alike. Per
round, the median handshake time of a stack is divided by the no-auth median *of the same
round*; the reported ratio is the median of those per-round ratios, with their min and max.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from typing import Any

from channels.testing import WebsocketCommunicator

from benchmarks.fixtures import Fixtures
from benchmarks.stacks import BY_NAME, ASGIApp, Stack
from benchmarks.stats import median, percentile, spread, table


class HandshakeFailed(AssertionError):
    """A handshake did not end the way its stack must (the benchmark would be meaningless)."""


async def handshake(
    app: ASGIApp,
    stack: Stack,
    subprotocols: Sequence[str],
    headers: Sequence[tuple[bytes, bytes]],
    expected: str,
    first_frame: str | None = None,
) -> None:
    """One full handshake; raises :class:`HandshakeFailed` on any unexpected outcome."""
    communicator = WebsocketCommunicator(
        app, f"/{stack.name}/", headers=list(headers), subprotocols=list(subprotocols)
    )
    connected, _ = await communicator.connect()
    if not connected:
        raise HandshakeFailed(f"{stack.name}: connection refused before accept")
    if first_frame is not None:
        await communicator.send_to(text_data=first_frame)
    message = await communicator.receive_output()
    if stack.rejects_with is None:
        if message != {"type": "websocket.send", "text": expected}:
            raise HandshakeFailed(f"{stack.name}: expected {expected!r}, got {message!r}")
    elif message.get("type") != "websocket.close" or message.get("code") != stack.rejects_with:
        raise HandshakeFailed(f"{stack.name}: expected close {stack.rejects_with}, got {message!r}")
    await communicator.disconnect()


async def timed_batch(app: ASGIApp, stack: Stack, fixtures: Fixtures, count: int) -> list[float]:
    """``count`` handshakes one after another; each one's duration in microseconds."""
    subprotocols, headers = stack.client_request(fixtures)
    expected = stack.expected_frame(fixtures)
    first_frame = stack.first_frame(fixtures)
    durations: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        await handshake(app, stack, subprotocols, headers, expected, first_frame)
        durations.append((clock() - started) / 1000)
    return durations


async def run_inprocess(
    apps: dict[str, ASGIApp],
    fixtures: Fixtures,
    stack_names: Sequence[str],
    *,
    handshakes: int,
    rounds: int,
    warmup: int,
    block: int = 10,
) -> dict[str, Any]:
    """Run the interleaved rounds; return per-round medians and the summary per stack.

    Within a round the stacks take turns in blocks of ``block`` handshakes (A B C A B C ...),
    so a burst of noise from elsewhere on the machine lands on every stack alike.
    """
    stacks = [BY_NAME[name] for name in stack_names]
    for stack in stacks:
        await timed_batch(apps[stack.name], stack, fixtures, warmup)
    medians: dict[str, list[float]] = {stack.name: [] for stack in stacks}
    p90s: dict[str, list[float]] = {stack.name: [] for stack in stacks}
    blocks = max(1, handshakes // block)
    for _ in range(rounds):
        durations: dict[str, list[float]] = {stack.name: [] for stack in stacks}
        gc.collect()
        for _ in range(blocks):
            for stack in stacks:
                durations[stack.name] += await timed_batch(
                    apps[stack.name], stack, fixtures, handshakes // blocks
                )
        for stack in stacks:
            medians[stack.name].append(median(durations[stack.name]))
            p90s[stack.name].append(percentile(durations[stack.name], 0.9))
    baseline = medians["noauth"]
    summary: dict[str, Any] = {}
    for stack in stacks:
        ratios = [value / base for value, base in zip(medians[stack.name], baseline, strict=True)]
        extra = [value - base for value, base in zip(medians[stack.name], baseline, strict=True)]
        low, high = spread(ratios)
        summary[stack.name] = {
            "label": stack.label,
            "median_us": median(medians[stack.name]),
            "p90_us": median(p90s[stack.name]),
            "extra_us": median(extra),
            "ratio": median(ratios),
            "ratio_min": low,
            "ratio_max": high,
            "round_medians_us": medians[stack.name],
            "round_ratios": ratios,
        }
    return {
        "handshakes_per_round": blocks * (handshakes // blocks),
        "rounds": rounds,
        "block": handshakes // blocks,
        "stacks": summary,
    }


def render_inprocess(result: dict[str, Any]) -> str:
    rows = []
    for name, entry in result["stacks"].items():
        rows.append(
            [
                name,
                entry["label"],
                f"{entry['median_us']:.0f}",
                f"{entry['p90_us']:.0f}",
                f"{entry['extra_us']:+.0f}",
                f"{1e6 / entry['median_us']:.0f}",
                f"{entry['ratio']:.2f}x",
                f"{entry['ratio_min']:.2f}-{entry['ratio_max']:.2f}",
            ]
        )
    title = (
        f"In-process handshakes (WebsocketCommunicator): {result['rounds']} interleaved rounds"
        f" x {result['handshakes_per_round']} handshakes per stack, taking turns in blocks"
        f" of {result['block']}"
    )
    return table(
        ["stack", "what", "median µs", "p90 µs", "extra µs", "per s", "ratio", "ratio min-max"],
        rows,
        title,
    )


def main_sync(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`run_inprocess` in a fresh event loop."""
    return asyncio.run(run_inprocess(*args, **kwargs))
