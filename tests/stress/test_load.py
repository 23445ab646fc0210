"""Load on one uvicorn process: a handshake storm, and 10,000 sockets held until they expire.

Both tests drive the server of ``conftest.py`` with real ``websockets`` clients (one asyncio
task per connection, in this process) carrying real HS256 tokens in the subprotocol, and
print their figures (``make stress`` runs pytest with ``-s``). The server's log must show no
warning, no error, no traceback and no JWT-shaped string.

One client process is enough for 10,000 sockets: it spends about 0.6 s of CPU for each
second the server spends while they connect, and 0.2 s while they expire (the CPU figures
the test prints: about 75 ms of the client's against 350 ms of the server's for each burst
of 500 closes), so the lateness it measures is the server's.
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

HELD = 10_000
#: The first ``exp`` falls at least this long after the expiry round's connect phase starts,
#: which must end first ...
EXPIRY_START = 20
#: ... and at least this many times as long as the slowest warm-up round took to open all
#: ``HELD`` sockets (14 s here, up to 30 s with other benchmarks running beside it).
EXPIRY_MARGIN = 2.0
#: The ``exp`` values are spread over this many consecutive seconds: 500 sockets expire in
#: each, at the same instant (whole seconds), so 500 closes are due at once.
EXPIRY_SPREAD = 20
#: The issue's bound: each socket closed with 4440 at most this long after its ``exp``.
MAX_LATENESS = 1.5
#: How early a close may be seen (the server's loop clock and the wall clock differ slightly).
EARLINESS = 0.05
#: Rounds of 10,000 sockets opened and closed before the memory baseline (see the test).
WARM_UP_ROUNDS = 4
#: Seconds with every socket open before the server's RSS is read.
SETTLE = 2
#: Seconds the server may take to finish the sockets of a round once they closed, and the
#: share of a CPU below which it counts as idle (see ``quiet``).
QUIET_TIMEOUT = 120
QUIET_CPU = 0.2
#: Server RSS per connection allowed, the first time ``HELD`` are open: 65-69 KiB here, of
#: which about 37 KiB is permessage-deflate, which the clients offer (as browsers do) and
#: uvicorn accepts (32 KiB per connection without it).
MAX_RSS_PER_CONNECTION_KIB = 80
#: Server RSS growth allowed from the baseline to after the expiry round: 16 MiB, 1.6 KiB per
#: connection (after the fourth round the RSS moves by up to 9 MiB between equal rounds, once
#: by 21 MiB between the third and the fourth: allocator fragmentation).
RSS_TOLERANCE_KIB = 16 * 1024
#: Live objects the server may gain over the expiry round: 0.02 per connection, so a leak of
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
    # (An empty signature is well-formed: an unsecured JWS, refused with 4401, not 4400.)
    shapes = ["not-a-jwt", f"{head}.{body}", f"{head}.{body}.c2ln.c2ln", "bm90IGpzb24.e30.c2ln"]
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


# -- 10,000 sockets held until their tokens expire ---------------------------------------


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


@dataclass(frozen=True)
class Round:
    """A warm-up round: seconds to open every socket, the server's RSS then, its teardown."""

    open_seconds: float
    rss_open_kib: int
    #: Seconds from the client's last close until the server was back to its idle tasks.
    teardown_seconds: float
    #: The server's RSS then.
    rss_after_kib: int


async def quiet(server: LoadServer, tasks: int) -> dict[str, Any]:
    """The server's diagnostics once it is back to ``tasks`` asyncio tasks (or time is up).

    A connection's task outlives its socket: after the client closes 10,000 at once the
    server spends seconds more tearing them down (the consumers' disconnect handlers, each
    with its hop to the database thread). Diagnostics are asked for only once the server's
    CPU is nearly idle, since each one is a full garbage collection that stalls it.
    """
    deadline = time.monotonic() + QUIET_TIMEOUT
    while True:
        cpu = server.cpu_seconds()
        await asyncio.sleep(0.5)
        busy = (server.cpu_seconds() - cpu) / 0.5 > QUIET_CPU
        if busy and time.monotonic() < deadline:
            continue
        diagnostics = await asyncio.to_thread(server.diagnostics)
        if diagnostics["tasks"] <= tasks or time.monotonic() >= deadline:
            return diagnostics


async def until_everyone_open(sockets: asyncio.Future[Any], tally: Concurrency) -> None:
    """Wait until every socket of ``tally`` is open, or ``sockets`` ended (one failed)."""
    everyone_open = asyncio.ensure_future(tally.everyone_open.wait())
    await asyncio.wait({sockets, everyone_open}, return_when=asyncio.FIRST_COMPLETED)
    everyone_open.cancel()


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
    server: LoadServer, count: int, user_ids: Sequence[int], tally: Concurrency, idle_tasks: int
) -> Round:
    """Open ``count`` sockets at once (long-lived tokens), read the server's RSS, close all.

    The client closes them, once every one is open and the RSS settled; a socket that fails
    releases the others at once, so the round ends and reports it. The round ends when the
    server is back to ``idle_tasks``, so the next starts on an idle server.
    """
    gate = asyncio.Semaphore(IN_FLIGHT)
    release = asyncio.Event()

    async def one(n: int) -> None:
        try:
            async with AsyncExitStack() as stack:
                async with gate:
                    token = token_for(user_ids[n % len(user_ids)])
                    ws = await stack.enter_async_context(dial(server, token))
                    await first_frame(ws)
                tally.opened()
                await release.wait()
            tally.closed()
        except BaseException:
            release.set()
            raise

    started = time.perf_counter()
    sockets = asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)
    await until_everyone_open(sockets, tally)
    open_seconds = time.perf_counter() - started
    await asyncio.sleep(SETTLE)
    rss_open = server.rss_kib()
    release.set()
    check_no_failures(await sockets)
    closed = time.perf_counter()
    diagnostics = await quiet(server, idle_tasks)
    assert diagnostics["tasks"] == idle_tasks, "the server did not finish the round's sockets"
    return Round(open_seconds, rss_open, time.perf_counter() - closed, server.rss_kib())


async def test_10000_held_sockets_close_with_4440_within_1_5_s_of_exp_and_memory_stays_flat(
    load_server: LoadServer, load_users: LoadUsers
) -> None:
    """Every socket accepted and open at once; each closed on time; RSS back where it was.

    CPython keeps most of the memory a peak of 10,000 connections took (over 600 MiB here)
    and its RSS keeps growing, by less each time, until the fourth such peak (six rounds in a
    row left it at 712, 793, 813, 832, 828 and 833 MiB), while the count of live objects is
    back to the same number after every round. So the baseline is taken after
    ``WARM_UP_ROUNDS`` rounds that each held 10,000 sockets at once (closed by the client);
    then the expiry round must leave the RSS within ``RSS_TOLERANCE_KIB`` of it, the live
    objects (the server's ``/diagnostics``, after a GC) within ``OBJECT_SLACK``, and exactly
    as many asyncio tasks: what the round leaves behind is what it leaked.

    The RSS per connection is the first warm-up round's: the server's RSS with every socket
    open, less its RSS before (which the storm test may have raised a little), over
    ``HELD``. Later rounds reuse that memory, so theirs is near zero.

    The expiry round's connect phase must end before the first ``exp``: that lies
    ``EXPIRY_MARGIN`` times the slowest warm-up round's connect phase ahead (at least
    ``EXPIRY_START`` seconds), so a machine busy with other work gets the time it needs.
    """
    assert load_server.descriptor_limit() >= HELD + IN_FLIGHT
    test_started = time.perf_counter()
    idle = await asyncio.to_thread(load_server.diagnostics)
    rss_idle = load_server.rss_kib()
    users = load_users.active
    rounds: list[Round] = []
    for _ in range(WARM_UP_ROUNDS):
        warm_up = Concurrency(target=HELD)
        rounds.append(await open_all_then_close(load_server, HELD, users, warm_up, idle["tasks"]))
        assert warm_up.peak == HELD
    before = await asyncio.to_thread(load_server.diagnostics)
    rss_before = load_server.rss_kib()
    log_start = len(load_server.log())

    started = time.time()
    lead = max(EXPIRY_START, EXPIRY_MARGIN * max(warm.open_seconds for warm in rounds))
    first_exp = math.ceil(started + lead)
    exps = [first_exp + n % EXPIRY_SPREAD for n in range(HELD)]
    gate = asyncio.Semaphore(IN_FLIGHT)
    tally = Concurrency(target=HELD)
    server_cpu, client_cpu = load_server.cpu_seconds(), time.process_time()
    holders = asyncio.gather(
        *(
            hold_until_closed(load_server, exp, users[n % len(users)], gate, tally)
            for n, exp in enumerate(exps)
        ),
        return_exceptions=True,
    )
    await until_everyone_open(holders, tally)
    connect_phase = time.time() - started
    connect_cpu = load_server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    rss_peak = load_server.rss_kib()
    server_cpu, client_cpu = load_server.cpu_seconds(), time.process_time()
    results = await holders
    expiry_cpu = load_server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    check_no_failures(results)
    after = await quiet(load_server, before["tasks"])  # its closing handshakes, its teardown
    rss_after = load_server.rss_kib()
    gained = Counter(after["by_type"])
    gained.subtract(before["by_type"])

    expiries = [result for result in results if isinstance(result, Expiry)]
    lateness = [expiry.lateness for expiry in expiries]
    per_connection_kib = (rounds[0].rss_open_kib - rss_idle) / HELD
    log = load_server.log()[log_start:]
    print(
        f"\nheld: {tally.peak} sockets open at once after {connect_phase:.1f}s (warm-up "
        f"rounds {', '.join(f'{warm.open_seconds:.1f}s' for warm in rounds)}, each torn down "
        f"by the server {', '.join(f'{warm.teardown_seconds:.1f}s' for warm in rounds)} after "
        f"the client's closes; CPU server "
        f"{connect_cpu[0]:.1f}s, client {connect_cpu[1]:.1f}s); first exp at "
        f"+{first_exp - started:.1f}s, {HELD // EXPIRY_SPREAD} per second over "
        f"{EXPIRY_SPREAD}s; closes {dict(Counter(expiry.code for expiry in expiries))}; "
        f"lateness after exp: min {min(lateness):+.3f}s, p50 {percentile(lateness, 0.5):+.3f}s"
        f", p90 {percentile(lateness, 0.9):+.3f}s, p99 {percentile(lateness, 0.99):+.3f}s, "
        f"max {max(lateness):+.3f}s (CPU over the expiries: server {expiry_cpu[0]:.1f}s, "
        f"client {expiry_cpu[1]:.1f}s)"
        f"\nheld: server RSS idle {rss_idle / 1024:.1f} MiB, with {HELD} open the first time "
        f"{rounds[0].rss_open_kib / 1024:.1f} MiB = {per_connection_kib:.1f} KiB per "
        f"connection; warm-up rounds open/after (MiB) "
        f"{', '.join(f'{w.rss_open_kib / 1024:.0f}/{w.rss_after_kib / 1024:.0f}' for w in rounds)}"
        f"; after warm-up {rss_before / 1024:.1f} MiB, with {HELD} open "
        f"{rss_peak / 1024:.1f} MiB ({(rss_peak - rss_before) / HELD:+.2f} KiB per connection)"
        f", after they closed {rss_after / 1024:.1f} MiB ({rss_after - rss_before:+d} KiB); "
        f"live objects {before['objects']} -> {after['objects']}, asyncio tasks "
        f"{before['tasks']} -> {after['tasks']}; test {time.perf_counter() - test_started:.0f}s"
    )
    assert tally.peak == HELD, "not every socket was open at the same time"
    assert max(tally.opened_at) < first_exp, "the connect phase ran past the first exp"
    assert [expiry.code for expiry in expiries] == [4440] * HELD
    assert min(lateness) >= -EARLINESS
    assert max(lateness) <= MAX_LATENESS
    assert per_connection_kib <= MAX_RSS_PER_CONNECTION_KIB
    assert rss_after - rss_before <= RSS_TOLERANCE_KIB
    assert after["objects"] - before["objects"] <= OBJECT_SLACK, gained.most_common(10)
    assert after["tasks"] == before["tasks"]
    expiry_line = "INFO channels_jwt: WebSocket closed by channels_jwt: token_expired code=4440"
    assert log.count(expiry_line) == HELD
    check_log(log)
