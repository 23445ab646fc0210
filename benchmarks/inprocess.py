"""In-process handshakes through channels' ``WebsocketCommunicator``, stack by stack.

One handshake is: connect, receive one frame (the consumer's greeting, or the middleware's
close for a rejected token), disconnect; a client that authenticates with the first message
sends it between the connect and the receive. Each round runs ``handshakes`` of them for every
stack, the stacks taking turns in blocks of ten (A B C ... A B C ...), so slow drifts and
bursts of load on the machine hit every stack alike. Per
round, the median handshake time of a stack is divided by the no-auth median *of the same
round*; the reported ratio is the median of those per-round ratios, with their min and max.

Every stack runs with the run's ``CONN_MAX_AGE`` (``BENCH_CONN_MAX_AGE``; Django's default, 0,
unless set: each ``database_sync_to_async`` call opens and closes its SQLite connection),
except the in-process-only pseudo-stack ``hs256_db_conn_max_age_60``: the ``hs256_db``
application with the default database's ``CONN_MAX_AGE`` at 60 during its blocks (see
:func:`persistent_connection`), taking its turns beside the others, so its ratio too is to the
same round's no-auth median. The runner adds it only when the run's ``CONN_MAX_AGE`` is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from benchmarks.fixtures import Fixtures
from benchmarks.stacks import BY_NAME, ASGIApp, Stack
from benchmarks.stats import median, percentile, spread, table


class HandshakeFailed(AssertionError):
    """A handshake did not end the way its stack must (the benchmark would be meaningless)."""


#: The in-process-only pseudo-stack: ``hs256_db`` with persistent database connections.
CONN_MAX_AGE_60 = "hs256_db_conn_max_age_60"
#: In-process-only pseudo-stacks: name -> (the stack it runs, what it is, its ``CONN_MAX_AGE``).
#: Not served by the benchmark servers (:mod:`benchmarks.asgi`): in-process only.
PSEUDO_STACKS: Mapping[str, tuple[str, str, int]] = {
    CONN_MAX_AGE_60: (
        "hs256_db",
        "channels_jwt HS256 + database_user, CONN_MAX_AGE=60 (persistent connection)",
        60,
    ),
}


@dataclasses.dataclass(frozen=True)
class Contender:
    """One row of the section: a stack, the application it runs, and its ``CONN_MAX_AGE``."""

    stack: Stack
    app: ASGIApp
    #: ``None``: the run's (the database settings as they are).
    conn_max_age: int | None = None


def contenders(apps: Mapping[str, ASGIApp], stack_names: Sequence[str]) -> list[Contender]:
    """The stacks named, pseudo-stacks (:data:`PSEUDO_STACKS`) included."""
    chosen = []
    for name in stack_names:
        if name in PSEUDO_STACKS:
            base, label, conn_max_age = PSEUDO_STACKS[name]
            stack = dataclasses.replace(BY_NAME[base], name=name, label=label)
            chosen.append(Contender(stack, apps[base], conn_max_age))
        else:
            chosen.append(Contender(BY_NAME[name], apps[name]))
    return chosen


def run_conn_max_age() -> int | None:
    """The default database's ``CONN_MAX_AGE`` for this run."""
    from django.db import connections

    value: int | None = connections.settings["default"]["CONN_MAX_AGE"]
    return value


def _open_persistent() -> object:
    """In the database thread: a fresh connection (its ``close_at`` from the new max age)."""
    from django.db import connection

    connection.close()
    connection.ensure_connection()
    return connection.connection


def _close_persistent() -> object:
    """In the database thread: close the connection; the one that was open (``None``: none)."""
    from django.db import connection

    held = connection.connection
    connection.close()
    return held


@contextlib.asynccontextmanager
async def persistent_connection(max_age: int) -> AsyncIterator[None]:
    """The default database's ``CONN_MAX_AGE`` is ``max_age`` meanwhile, its connection open.

    ``connections.settings["default"]`` is the very dict every thread's ``DatabaseWrapper``
    holds as ``settings_dict``; ``connect()`` reads ``CONN_MAX_AGE`` from it to set the
    connection's ``close_at``, which ``close_old_connections()`` (channels'
    ``database_sync_to_async`` calls it before and after each call) compares with the clock.
    Those calls all run in asgiref's one thread-sensitive thread (a communicator's
    application runs in a fresh context: no ``ThreadSensitiveContext``), and so does
    ``sync_to_async`` here. ``close_at`` is fixed when the connection opens, so setting the
    value back does not close a connection opened under ``max_age``: it is closed here,
    explicitly, in that thread; and it is opened before the block (untimed), as on a server
    that has been up a while (one reconnect every ``max_age`` seconds, amortised over far
    more handshakes than a block). Raises :class:`HandshakeFailed` if the block did not
    reuse that one connection.
    """
    from django.db import connections

    settings_dict = connections.settings["default"]
    run_value = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = max_age
    try:
        opened = await sync_to_async(_open_persistent)()
        yield
    finally:
        settings_dict["CONN_MAX_AGE"] = run_value
        held = await sync_to_async(_close_persistent)()
    if held is not opened:
        raise HandshakeFailed(
            f"CONN_MAX_AGE={max_age}: the database connection opened before the block"
            " was not the one still open after it (not persistent)"
        )


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


async def timed_block(contender: Contender, fixtures: Fixtures, count: int) -> list[float]:
    """:func:`timed_batch` for ``contender``, under its ``CONN_MAX_AGE`` if it has one."""
    if contender.conn_max_age is None:
        return await timed_batch(contender.app, contender.stack, fixtures, count)
    async with persistent_connection(contender.conn_max_age):
        return await timed_batch(contender.app, contender.stack, fixtures, count)


async def run_inprocess(
    apps: Mapping[str, ASGIApp],
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
    so a burst of noise from elsewhere on the machine lands on every stack alike. Pseudo-stacks
    (:data:`PSEUDO_STACKS`) take their turns like the others.
    """
    conn_max_age = run_conn_max_age()
    chosen = contenders(apps, stack_names)
    stacks = [contender.stack for contender in chosen]
    for contender in chosen:
        await timed_block(contender, fixtures, warmup)
    medians: dict[str, list[float]] = {stack.name: [] for stack in stacks}
    p90s: dict[str, list[float]] = {stack.name: [] for stack in stacks}
    blocks = max(1, handshakes // block)
    for _ in range(rounds):
        durations: dict[str, list[float]] = {stack.name: [] for stack in stacks}
        gc.collect()
        for _ in range(blocks):
            for contender in chosen:
                durations[contender.stack.name] += await timed_block(
                    contender, fixtures, handshakes // blocks
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
        "conn_max_age": conn_max_age,
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
        f" of {result['block']}; CONN_MAX_AGE={result.get('conn_max_age', 0)} unless said"
    )
    return table(
        ["stack", "what", "median µs", "p90 µs", "extra µs", "per s", "ratio", "ratio min-max"],
        rows,
        title,
    )


def main_sync(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`run_inprocess` in a fresh event loop."""
    return asyncio.run(run_inprocess(*args, **kwargs))
