"""Load on one uvicorn process: a handshake storm, and 2,000 sockets held until they expire.

Both tests drive the server of ``conftest.py`` with real ``websockets`` clients (one asyncio
task per connection, in this process) carrying real HS256 tokens in the subprotocol, and
print their figures (``make stress`` runs pytest with ``-s``). The server's log must show no
warning, no error, no traceback and no JWT-shaped string.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests import harness
from tests.harness import MARKER, claims_for, hs_token
from tests.live.server_settings import SIGNING_KEY
from tests.stress.conftest import LoadServer, LoadUsers, run_setup

#: Tokens signed with this suite's servers' key.
token_for = partial(harness.token_for, key=SIGNING_KEY)

pytestmark = pytest.mark.stress

PATH = "/ws/guard/"
#: Seconds any one handshake or frame may take, however loaded the server is.
TIMEOUT = 60.0
#: Handshakes in flight at once (the client's concurrency; the server sees all of them).
IN_FLIGHT = 200

STORM_CONNECTS = 5000
#: The bad fifth of the storm: kind -> (count, the close code it must get).
STORM_BAD: dict[str, tuple[int, int]] = {
    "expired": (200, 4440),
    "bad_signature": (200, 4401),
    "malformed": (200, 4400),
    "inactive_user": (100, 4403),
    "unknown_user": (100, 4403),
    "revoked": (200, 4441),
}

HELD = 2000
#: The first ``exp`` falls this long after the connect phase starts (which must end first:
#: it takes 5 s here, 12 s with another test suite running beside it).
EXPIRY_START = 20
#: ... and the ``exp`` values are spread over this many consecutive seconds.
EXPIRY_SPREAD = 20
#: The issue's bound: each socket closed with 4440 at most this long after its ``exp``.
MAX_LATENESS = 1.5
#: How early a close may be seen (the server's loop clock and the wall clock differ slightly).
EARLINESS = 0.05
#: Rounds of 2,000 sockets opened and closed before the memory baseline (see the test).
WARM_UP_ROUNDS = 2
#: Server RSS growth allowed from the baseline to after the expiry round: 16 MiB, 8 KiB per
#: connection (the RSS moves by up to 7 MiB between equal rounds: allocator fragmentation).
RSS_TOLERANCE_KIB = 16 * 1024
#: Live objects the server may gain over the expiry round: 0.1 per connection, so a leak of
#: even one object per connection fails (caches filling up on first use stay well below).
OBJECT_SLACK = 200

ACCEPTED = "accepted"
_JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_LOG_PROBLEM = re.compile(r"^(WARNING|ERROR|CRITICAL)\b|Traceback", re.MULTILINE)


def dial(server: LoadServer, token: str) -> connect:
    """A client connection offering ``[marker, token]``; no client pings (2,000 of them)."""
    return connect(
        server.url(PATH),
        subprotocols=[MARKER, token],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        ping_interval=None,
    )


async def first_frame(ws: ClientConnection) -> Any:
    """The guard consumer's greeting, ``{"exp": ...}``, parsed."""
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def check_log(text: str) -> None:
    """No warning, error or traceback, and no token, in a slice of the server's log."""
    problems = [line for line in text.splitlines() if _LOG_PROBLEM.search(line)]
    assert not problems, "server logged problems:\n" + "\n".join(problems[:20])
    assert not _JWT_SHAPED.search(text), "a JWT-shaped string reached the server log"


def check_no_failures(results: Iterable[object]) -> None:
    """Fail with the first few exceptions a gather returned."""
    failures = [result for result in results if isinstance(result, BaseException)]
    assert not failures, f"{len(failures)} connections failed, e.g. {failures[:3]!r}"


# -- The handshake storm ------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One storm connect: what kind of token, and the outcome it must have."""

    kind: str
    token: str
    expected: str


@dataclass(frozen=True)
class Outcome:
    """What one storm connect got (``"accepted"`` or the close code) and how fast."""

    kind: str
    got: str
    latency: float


def storm_attempts(server: LoadServer, users: LoadUsers) -> list[Attempt]:
    """5,000 connects in a fixed shuffled order: 80% good tokens, 20% bad of every kind."""
    now = int(time.time())
    rng = random.Random(7)
    attempts: list[Attempt] = []

    def add(kind: str, expected: str, tokens: Iterable[str]) -> None:
        attempts.extend(Attempt(kind, token, expected) for token in tokens)

    bad_total = sum(count for count, _ in STORM_BAD.values())
    good = STORM_CONNECTS - bad_total
    add("good", ACCEPTED, (token_for(rng.choice(users.active)) for _ in range(good)))
    count, code = STORM_BAD["expired"]
    expired = (token_for(users.active[0], exp=now - 60, iat=now - 360) for _ in range(count))
    add("expired", str(code), expired)
    count, code = STORM_BAD["bad_signature"]
    other_key = "a-different-signing-key-0123456789abcdefghijklmnopqrstuvwxyz"
    forged = (hs_token(claims_for(users.active[0]), key=other_key) for _ in range(count))
    add("bad_signature", str(code), forged)
    count, code = STORM_BAD["malformed"]
    head, body, _ = token_for(users.active[0]).split(".")
    shapes = ["not-a-jwt", f"{head}.{body}", f"{head}.{body}.", "bm90IGpzb24.e30.c2ln"]
    add("malformed", str(code), (shapes[n % len(shapes)] for n in range(count)))
    count, code = STORM_BAD["inactive_user"]
    add("inactive_user", str(code), (token_for(users.inactive) for _ in range(count)))
    count, code = STORM_BAD["unknown_user"]
    add("unknown_user", str(code), (token_for(10**9 + n) for n in range(count)))
    count, code = STORM_BAD["revoked"]
    revoked_claims = [claims_for(users.active[0]) for _ in range(count)]
    revoked = run_setup(server.directory, "revoke", stdin=json.dumps(revoked_claims))
    assert revoked == {"revoked": count}
    add("revoked", str(code), (hs_token(claims, key=SIGNING_KEY) for claims in revoked_claims))
    rng.shuffle(attempts)
    assert len(attempts) == STORM_CONNECTS
    return attempts


async def storm_connect(server: LoadServer, attempt: Attempt, gate: asyncio.Semaphore) -> Outcome:
    """Connect once: accepted (the greeting came) or the code of the server's close."""
    async with gate:
        started = time.perf_counter()
        try:
            async with dial(server, attempt.token) as ws:
                try:
                    await first_frame(ws)
                    got = ACCEPTED
                except ConnectionClosed as closed:
                    got = str(closed.rcvd.code) if closed.rcvd else "closed-without-frame"
                latency = time.perf_counter() - started
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            got, latency = f"error {type(exc).__name__}", time.perf_counter() - started
    return Outcome(attempt.kind, got, latency)


async def test_handshake_storm_rejects_every_bad_token_with_its_code_and_accepts_the_rest(
    load_server: LoadServer, load_users: LoadUsers
) -> None:
    """5,000 connects, 200 in flight: each good token greeted, each bad one its exact code.

    Under load a server may shed work, mix up connections or time out lookups; none of that
    may turn into a wrong verdict. The figures (rate, latency, who used the CPU) are printed;
    only the verdicts and the log are asserted, since speed depends on the machine.
    """
    attempts = storm_attempts(load_server, load_users)
    log_start = len(load_server.log())
    gate = asyncio.Semaphore(IN_FLIGHT)

    server_cpu, client_cpu = load_server.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(storm_connect(load_server, attempt, gate) for attempt in attempts)
    )
    elapsed = time.perf_counter() - started
    server_cpu = load_server.cpu_seconds() - server_cpu
    client_cpu = time.process_time() - client_cpu
    await asyncio.sleep(0.5)  # let the server write its last log lines

    expected = Counter((attempt.kind, attempt.expected) for attempt in attempts)
    got = Counter((outcome.kind, outcome.got) for outcome in outcomes)
    latencies = [outcome.latency for outcome in outcomes]
    log = load_server.log()[log_start:]
    print(
        f"\nstorm: {len(outcomes)} handshakes ({IN_FLIGHT} in flight) in {elapsed:.1f}s = "
        f"{len(outcomes) / elapsed:.0f}/s; latency p50 {percentile(latencies, 0.5) * 1000:.0f}"
        f" ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f}"
        f" ms; CPU busy: server {server_cpu / elapsed:.0%}, client {client_cpu / elapsed:.0%};"
        f" outcomes {dict(sorted(got.items()))}"
    )
    assert got == expected
    bad = sum(count for count, _ in STORM_BAD.values())
    # Counted with the level prefix: it shows a warning or an error would be visible too.
    assert log.count("INFO channels_jwt: WebSocket authentication failed:") == bad
    check_log(log)


# -- 2,000 sockets held until their tokens expire -----------------------------------------


@dataclass
class Concurrency:
    """How many client sockets are open now, the most at once, and when all ``target`` were."""

    target: int
    open: int = 0
    peak: int = 0
    opened_at: list[float] = field(default_factory=list)
    everyone_open: asyncio.Event = field(default_factory=asyncio.Event)

    def opened(self) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.opened_at.append(time.time())
        if self.open == self.target:
            self.everyone_open.set()

    def closed(self) -> None:
        self.open -= 1


@dataclass(frozen=True)
class Expiry:
    """How one held socket ended: the close code, and how long after its ``exp``."""

    code: int | None
    lateness: float


async def hold_until_closed(
    server: LoadServer, exp: int, user_id: int, gate: asyncio.Semaphore, tally: Concurrency
) -> Expiry:
    """Open a socket whose token expires at ``exp``; wait for the server to close it."""
    async with AsyncExitStack() as stack:
        async with gate:
            ws = await stack.enter_async_context(dial(server, token_for(user_id, exp=exp)))
            greeting = await first_frame(ws)
        assert greeting == {"exp": exp}, f"unexpected greeting {greeting!r}"
        tally.opened()
        try:
            frame = await asyncio.wait_for(ws.recv(), exp - time.time() + TIMEOUT)
        except ConnectionClosed as closed:
            closed_at = time.time()
            return Expiry(closed.rcvd.code if closed.rcvd else None, closed_at - exp)
        finally:
            tally.closed()
        raise AssertionError(f"unexpected frame before the close: {frame!r}")


async def open_all_then_close(
    server: LoadServer, count: int, user_ids: Sequence[int], tally: Concurrency
) -> None:
    """Open ``count`` sockets at once (long-lived tokens), then close them all (client)."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int) -> None:
        async with AsyncExitStack() as stack:
            async with gate:
                token = token_for(user_ids[n % len(user_ids)])
                ws = await stack.enter_async_context(dial(server, token))
                await first_frame(ws)
            tally.opened()
            await asyncio.wait_for(tally.everyone_open.wait(), TIMEOUT)
        tally.closed()

    check_no_failures(await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True))


async def test_2000_held_sockets_close_with_4440_within_1_5_s_of_exp_and_memory_stays_flat(
    load_server: LoadServer, load_users: LoadUsers
) -> None:
    """Every socket accepted and open at once; each closed on time; RSS back where it was.

    CPython keeps most of the memory a peak of 2,000 connections took (over 100 MiB here)
    and its RSS settles only after a second such peak, while the count of live objects is
    back to the same number after every round. So the baseline is taken after
    ``WARM_UP_ROUNDS`` rounds that each held 2,000 sockets at once (closed by the client);
    then the expiry round must leave the RSS within ``RSS_TOLERANCE_KIB`` of it, the live
    objects (the server's ``/diagnostics``, after a GC) within ``OBJECT_SLACK``, and exactly
    as many asyncio tasks: what the round leaves behind is what it leaked.
    """
    assert load_server.descriptor_limit() >= HELD + IN_FLIGHT
    rss_idle = load_server.rss_kib()
    for _ in range(WARM_UP_ROUNDS):
        warm_up = Concurrency(target=HELD)
        await open_all_then_close(load_server, HELD, load_users.active, warm_up)
        assert warm_up.peak == HELD
    await asyncio.sleep(2)
    rss_before = load_server.rss_kib()
    before = await asyncio.to_thread(load_server.diagnostics)
    log_start = len(load_server.log())

    started = time.time()
    first_exp = math.ceil(started) + EXPIRY_START
    exps = [first_exp + n % EXPIRY_SPREAD for n in range(HELD)]
    users = load_users.active
    gate = asyncio.Semaphore(IN_FLIGHT)
    tally = Concurrency(target=HELD)
    holders = asyncio.gather(
        *(
            hold_until_closed(load_server, exp, users[n % len(users)], gate, tally)
            for n, exp in enumerate(exps)
        ),
        return_exceptions=True,
    )
    everyone_open = asyncio.ensure_future(tally.everyone_open.wait())
    await asyncio.wait({holders, everyone_open}, return_when=asyncio.FIRST_COMPLETED)
    everyone_open.cancel()
    connect_phase = time.time() - started
    rss_peak = load_server.rss_kib()
    results = await holders
    check_no_failures(results)
    await asyncio.sleep(2)  # the server finishes its closing handshakes and frees them
    rss_after = load_server.rss_kib()
    after = await asyncio.to_thread(load_server.diagnostics)
    gained = Counter(after["by_type"])
    gained.subtract(before["by_type"])

    expiries = [result for result in results if isinstance(result, Expiry)]
    lateness = [expiry.lateness for expiry in expiries]
    log = load_server.log()[log_start:]
    print(
        f"\nheld: {tally.peak} sockets open at once after {connect_phase:.1f}s (first exp at "
        f"+{first_exp - started:.1f}s, spread over {EXPIRY_SPREAD}s); closes "
        f"{dict(Counter(expiry.code for expiry in expiries))}; lateness after exp: min "
        f"{min(lateness):+.3f}s, p50 {percentile(lateness, 0.5):+.3f}s, p99 "
        f"{percentile(lateness, 0.99):+.3f}s, max {max(lateness):+.3f}s; server RSS idle "
        f"{rss_idle / 1024:.1f} MiB, after warm-up {rss_before / 1024:.1f} MiB, with "
        f"{HELD} open {rss_peak / 1024:.1f} MiB, after they closed {rss_after / 1024:.1f} MiB; "
        f"live objects {before['objects']} -> {after['objects']}, asyncio tasks "
        f"{before['tasks']} -> {after['tasks']}"
    )
    assert tally.peak == HELD, "not every socket was open at the same time"
    assert max(tally.opened_at) < first_exp, "the connect phase ran past the first exp"
    assert [expiry.code for expiry in expiries] == [4440] * HELD
    assert min(lateness) >= -EARLINESS
    assert max(lateness) <= MAX_LATENESS
    assert rss_after - rss_before <= RSS_TOLERANCE_KIB
    assert after["objects"] - before["objects"] <= OBJECT_SLACK, gained.most_common(10)
    assert after["tasks"] == before["tasks"]
    expiry_line = "INFO channels_jwt: WebSocket closed by channels_jwt: token_expired code=4440"
    assert log.count(expiry_line) == HELD
    check_log(log)
