"""Instructions per in-process handshake: a figure that holds still on a shared machine.

A child Python process runs in-process handshakes (channels' ``WebsocketCommunicator``, the
same handshake as :mod:`benchmarks.inprocess`) under valgrind's callgrind, which counts the
instructions every thread executes, whatever else the machine is doing. The child first
imports, sets Django up and warms every stack up (the first handshakes import and cache), then
runs, per stack, N handshakes and 2N handshakes, calling ``os.getppid()`` between them: each
call makes callgrind dump its counters (``--dump-before=getppid``), so each run lands in a file
of its own. Instructions per handshake = (count of 2N - count of N) / N, which cancels whatever
a run costs besides its handshakes. A garbage collection and ``gc.freeze()`` before each run
put every run in the same collector state. Without valgrind, ``perf stat -e instructions:u``
counts the same difference with two processes per stack (N and 2N handshakes, start-up
included in both), where the CPU exposes the counter.

``--breakdown`` answers where the instructions go. Callgrind sees the C interpreter, not
Python functions; CPython 3.12's perf trampolines (``-X perf``) give every Python function a
small machine-code entry point of its own, named in ``/tmp/perf-<pid>.map``. Callgrind counts
the inclusive cost of each of those entry points like any C function, so each Python function
gets its inclusive instruction count, the thread pool's worker included. The breakdown
subtracts no auth from ``hs256_db`` (and ``hs256_token``) function by function and groups the
differences (:data:`GROUPS`); tables go to ``benchmarks/profiles/instructions_*.txt``.

``python -m benchmarks.instructions [--quick] [--breakdown --python python3.12]``; the
benchmark runner's ``instructions`` section runs the counts (``python -m benchmarks.run
--only instructions``).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python benchmarks/instructions.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import table

ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = ROOT / "benchmarks" / "profiles"
#: The C function the child calls between runs (``os.getppid``): callgrind dumps before it.
MARKER = "getppid"
PERF_EVENT = "instructions:u"
#: The communicator's timeouts in the child: under callgrind a handshake runs ~50x slower,
#: and the first ones import and cache. The value changes no instruction count.
TIMEOUT = 300.0
#: Stacks of the breakdown (no auth is the baseline).
BREAKDOWN_STACKS = ("noauth", "hs256_token", "hs256_db")


# --- the child: handshakes, nothing else -------------------------------------------------


async def _handshake(app: Any, stack: Any, request: tuple[Any, ...]) -> None:
    """One handshake, as :func:`benchmarks.inprocess.handshake` runs it (longer timeouts)."""
    from channels.testing import WebsocketCommunicator

    subprotocols, headers, expected, first_frame = request
    communicator = WebsocketCommunicator(
        app, f"/{stack.name}/", headers=list(headers), subprotocols=list(subprotocols)
    )
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    if not connected:
        raise AssertionError(f"{stack.name}: connection refused before accept")
    if first_frame is not None:
        await communicator.send_to(text_data=first_frame)
    message = await communicator.receive_output(timeout=TIMEOUT)
    if stack.rejects_with is None:
        if message != {"type": "websocket.send", "text": expected}:
            raise AssertionError(f"{stack.name}: expected {expected!r}, got {message!r}")
    elif message.get("type") != "websocket.close" or message.get("code") != stack.rejects_with:
        raise AssertionError(f"{stack.name}: expected close {stack.rejects_with}, got {message!r}")
    await communicator.disconnect(timeout=TIMEOUT)


async def _child_runs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks.fixtures import Fixtures, load_keys
    from benchmarks.stacks import BY_NAME, build_stacks

    apps = build_stacks(load_keys())
    fixtures = Fixtures(**spec["fixtures"])
    stacks = [BY_NAME[name] for name in spec["stacks"]]
    requests = {
        stack.name: (
            *stack.client_request(fixtures),
            stack.expected_frame(fixtures),
            stack.first_frame(fixtures),
        )
        for stack in stacks
    }
    for stack in stacks:
        for _ in range(spec["warmup"]):
            await _handshake(apps[stack.name], stack, requests[stack.name])
    runs = []
    for stack in stacks:
        for count in spec["counts"]:
            gc.collect()
            gc.freeze()  # what the set-up left is not scanned again by the runs' collections
            if spec["markers"]:
                os.getppid()  # callgrind dumps here: the run is alone in the next file
            for _ in range(count):
                await _handshake(apps[stack.name], stack, requests[stack.name])
            if spec["markers"]:
                os.getppid()
            runs.append({"stack": stack.name, "count": count})
    return runs


def _child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    runs = asyncio.run(_child_runs(spec))
    print(json.dumps({"pid": os.getpid(), "runs": runs}))


# --- the parent: which counter, the child's command, the counts ---------------------------


def _perf_counts_instructions(perf: str) -> bool:
    """Whether ``perf stat`` can count user-space instructions here (not in most VMs)."""
    try:
        completed = subprocess.run(  # noqa: S603 - perf, with fixed arguments
            [perf, "stat", "-x,", "-e", PERF_EVENT, "--", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0 and _perf_value(completed.stderr) is not None


def _perf_value(output: str) -> float | None:
    for line in output.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith(PERF_EVENT.split(":")[0]):
            try:
                return float(fields[0])
            except ValueError:
                return None
    return None


def choose_tool(preference: str = "auto") -> tuple[str | None, str]:
    """``(tool, path)``: callgrind if valgrind is installed, else perf if it counts; or why not."""
    valgrind = shutil.which("valgrind")
    perf = shutil.which("perf")
    if preference in ("auto", "callgrind") and valgrind:
        return "callgrind", valgrind
    if preference in ("auto", "perf") and perf and _perf_counts_instructions(perf):
        return "perf", perf
    if preference == "callgrind":
        return None, "valgrind not found"
    if preference == "perf":
        return None, f"perf stat cannot count {PERF_EVENT} here"
    return None, f"valgrind not found, and perf stat cannot count {PERF_EVENT} here"


def _child_env(conn_max_age: int | None) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        # The same dict layouts in every run.
        "PYTHONHASHSEED": "0",
    }
    if conn_max_age is not None:
        env["BENCH_CONN_MAX_AGE"] = str(conn_max_age)
    return env


def _fixtures_dict(fixtures: Any) -> dict[str, Any]:
    return {
        "user_pk": fixtures.user_pk,
        "session_key": fixtures.session_key,
        "tokens": fixtures.tokens,
    }


def _callgrind_child(
    valgrind: str,
    python: str,
    workdir: Path,
    spec: dict[str, Any],
    *,
    conn_max_age: int | None = None,
    trampolines: bool = False,
) -> subprocess.Popen[str]:
    """Start the child under callgrind; its dumps go to ``workdir/callgrind.out.<n>``."""
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps({**spec, "markers": True}))
    command = [
        valgrind,
        "--tool=callgrind",
        "-q",
        f"--dump-before={MARKER}",
        f"--callgrind-out-file={workdir / 'callgrind.out'}",
        python,
        *(["-X", "perf"] if trampolines else []),
        "-m",
        "benchmarks.instructions",
        "--child",
        str(spec_path),
    ]
    return subprocess.Popen(  # noqa: S603 - valgrind and our own interpreter and module
        command,
        cwd=ROOT,
        env=_child_env(conn_max_age),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], what: str) -> dict[str, Any]:
    """Wait for a child; its report (the runs in order), or an error with its output."""
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{what} exited with {process.returncode}:\n{stderr[-3000:]}")
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return report


def _dump_total(path: Path) -> int:
    """The instruction count of one callgrind dump (its ``summary:`` header)."""
    with path.open() as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no summary in {path}")


def _run_dumps(workdir: Path, runs: list[dict[str, Any]]) -> list[Path]:
    """The dump of each run: dump 1 is the set-up; then each run, and the gap after it."""
    paths = [workdir / f"callgrind.out.{2 * index + 2}" for index in range(len(runs))]
    missing = [path.name for path in paths if not path.exists()]
    if missing:
        raise RuntimeError(f"callgrind did not dump {', '.join(missing)} (marker {MARKER})")
    return paths


def _per_handshake(
    totals: dict[tuple[str, int], float], stacks: Sequence[str], n: int
) -> dict[str, float]:
    return {name: (totals[name, 2 * n] - totals[name, n]) / n for name in stacks}


def _count_callgrind(
    valgrind: str,
    fixtures: Any,
    stacks: Sequence[str],
    n: int,
    warmup: int,
    conn_max_age_60: bool,
) -> tuple[dict[str, float], dict[str, float] | None]:
    spec = {
        "fixtures": _fixtures_dict(fixtures),
        "stacks": list(stacks),
        "counts": [n, 2 * n],
        "warmup": warmup,
    }
    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        main_dir, persistent_dir = Path(tmp, "main"), Path(tmp, "conn_max_age_60")
        main_dir.mkdir()
        children = [(main_dir, _callgrind_child(valgrind, sys.executable, main_dir, spec))]
        if conn_max_age_60:  # beside the main child: the machine has two cores
            persistent_dir.mkdir()
            persistent = {**spec, "stacks": ["noauth", "hs256_db"]}
            children.append(
                (
                    persistent_dir,
                    _callgrind_child(
                        valgrind, sys.executable, persistent_dir, persistent, conn_max_age=60
                    ),
                )
            )
        results: list[dict[str, float]] = []
        for workdir, process in children:
            report = _finish(process, f"the callgrind child ({workdir.name})")
            runs = report["runs"]
            totals = {
                (run["stack"], run["count"]): float(_dump_total(path))
                for run, path in zip(runs, _run_dumps(workdir, runs), strict=True)
            }
            results.append(
                _per_handshake(totals, list(dict.fromkeys(run["stack"] for run in runs)), n)
            )
    return results[0], (results[1] if conn_max_age_60 else None)


def _count_perf(
    perf: str,
    fixtures: Any,
    stacks: Sequence[str],
    n: int,
    warmup: int,
    conn_max_age_60: bool,
) -> tuple[dict[str, float], dict[str, float] | None]:
    """perf stat over whole processes: N and 2N handshakes, one process each."""

    def count(workdir: Path, stack: str, handshakes: int, conn_max_age: int | None) -> float:
        spec_path = workdir / f"spec-{stack}-{handshakes}.json"
        spec = {
            "fixtures": _fixtures_dict(fixtures),
            "stacks": [stack],
            "counts": [handshakes],
            "warmup": warmup,
            "markers": False,
        }
        spec_path.write_text(json.dumps(spec))
        output = workdir / f"perf-{stack}-{handshakes}.csv"
        command = [perf, "stat", "-x,", "-e", PERF_EVENT, "-o", str(output), "--"]
        command += [sys.executable, "-m", "benchmarks.instructions", "--child", str(spec_path)]
        completed = subprocess.run(  # noqa: S603 - perf and our own interpreter and module
            command,
            cwd=ROOT,
            env=_child_env(conn_max_age),
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"perf child exited with {completed.returncode}:\n{completed.stderr[-3000:]}"
            )
        value = _perf_value(output.read_text())
        if value is None:
            raise RuntimeError(f"perf stat counted no {PERF_EVENT}:\n{output.read_text()}")
        return value

    def per_handshake(
        workdir: Path, names: Sequence[str], conn_max_age: int | None
    ) -> dict[str, float]:
        totals = {
            (name, handshakes): count(workdir, name, handshakes, conn_max_age)
            for name in names
            for handshakes in (n, 2 * n)
        }
        return _per_handshake(totals, names, n)

    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        main = per_handshake(Path(tmp), stacks, None)
        persistent = (
            per_handshake(Path(tmp), ["noauth", "hs256_db"], 60) if conn_max_age_60 else None
        )
    return main, persistent


def _summary(counts: dict[str, float]) -> dict[str, Any]:
    from benchmarks.stacks import BY_NAME

    base = counts["noauth"]
    return {
        name: {
            "label": BY_NAME[name].label,
            "instructions": round(value),
            "extra": round(value - base),
            "ratio": value / base,
        }
        for name, value in counts.items()
    }


def run_instructions(
    fixtures: Any,
    stacks: Sequence[str],
    *,
    handshakes: int,
    perf_handshakes: int,
    warmup: int,
    conn_max_age: int,
    conn_max_age_60: bool,
    tool: str = "auto",
) -> dict[str, Any]:
    """Instructions per handshake for each stack, and their ratio to no auth (same child).

    ``conn_max_age_60`` adds ``hs256_db`` with ``CONN_MAX_AGE=60`` (another child, beside
    the first), when the main run uses Django's default 0. Without a tool that can count,
    returns ``{"skipped": <why>}``.
    """
    chosen, where = choose_tool(tool)
    if chosen is None:
        return {"skipped": where, "stacks": {}}
    stacks = ["noauth", *(name for name in stacks if name != "noauth")]
    conn_max_age_60 = conn_max_age_60 and conn_max_age == 0 and "hs256_db" in stacks
    count = _count_callgrind if chosen == "callgrind" else _count_perf
    n = handshakes if chosen == "callgrind" else perf_handshakes
    main, persistent = count(where, fixtures, stacks, n, warmup, conn_max_age_60)
    result: dict[str, Any] = {
        "tool": chosen,
        "handshakes": n,
        "conn_max_age": conn_max_age,
        "stacks": _summary(main),
    }
    if persistent is not None:
        result["conn_max_age_60"] = _summary(persistent)
    return result


def render_instructions(result: dict[str, Any]) -> str:
    if result.get("skipped"):
        return (
            f"instructions: skipped ({result['skipped']}); install valgrind to count"
            " instructions per handshake"
        )
    rows = [
        [
            name,
            entry["label"],
            f"{entry['instructions'] / 1e6:.3f}",
            f"{entry['extra'] / 1e6:+.3f}",
            f"{entry['ratio']:.2f}x",
        ]
        for name, entry in result["stacks"].items()
    ]
    persistent = result.get("conn_max_age_60")
    if persistent:
        rows += [
            [
                f"{name} (CONN_MAX_AGE=60)",
                "the same, persistent database connections",
                f"{entry['instructions'] / 1e6:.3f}",
                f"{entry['extra'] / 1e6:+.3f}",
                f"{entry['ratio']:.2f}x",
            ]
            for name, entry in persistent.items()
            if name != "noauth"
        ]
    how = (
        "callgrind, one process: the difference between"
        if result["tool"] == "callgrind"
        else "perf stat instructions:u, two processes per stack: the difference between"
    )
    n = result["handshakes"]
    title = (
        f"Instructions per in-process handshake ({how} {2 * n} and {n} handshakes, / {n};"
        f" CONN_MAX_AGE={result['conn_max_age']})"
    )
    return table(["stack", "what", "M instr/hs", "extra M", "ratio"], rows, title)


# --- the breakdown: Python functions' inclusive counts (CPython 3.12+, -X perf) ------------


def parse_callgrind(path: Path) -> tuple[int, dict[str, int], dict[str, int]]:
    """``(total, self cost, inclusive cost)`` per function name of one callgrind dump.

    A function's inclusive cost is its own plus that of the calls it made. Callgrind names a
    function re-entered while on the stack ``name'2``: those are left as they are, so
    ``name``'s inclusive cost counts each outermost call once.
    """
    names: dict[str, str] = {}
    own: dict[str, int] = defaultdict(int)
    calls: dict[str, int] = defaultdict(int)
    function = ""
    call_pending = False
    total = 0

    def name(text: str) -> str:
        match = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if match is None:
            return text
        if match.group(2) is not None:
            names[match.group(1)] = match.group(2)
        return names[match.group(1)]

    with path.open() as dump:
        for line in dump:
            first = line[:1]
            if first.isdigit() or first in "+-*":
                fields = line.split()
                cost = int(fields[-1]) if len(fields) > 1 else 0
                if call_pending:
                    calls[function] += cost
                    call_pending = False
                else:
                    own[function] += cost
            elif line.startswith("fn="):
                function = name(line[3:].rstrip("\n"))
            elif line.startswith("cfn="):
                name(line[4:].rstrip("\n"))
            elif line.startswith("calls="):
                call_pending = True
            elif line.startswith("summary:"):
                total = int(line.split()[1])
    inclusive = {key: own.get(key, 0) + calls.get(key, 0) for key in {*own, *calls}}
    return total, dict(own), inclusive


def load_perf_map(path: Path) -> list[tuple[int, int, str]]:
    """``(start, size, name)`` of each trampoline in a ``/tmp/perf-<pid>.map``, sorted."""
    entries = []
    for line in path.read_text().splitlines():
        start, size, name = line.split(" ", 2)
        entries.append((int(start, 16), int(size, 16), name))
    return sorted(entries)


def python_functions(
    inclusive: dict[str, int], perf_map: list[tuple[int, int, str]]
) -> dict[str, int]:
    """Inclusive cost per Python function (``qualname:file``), from its trampoline's."""
    starts = [entry[0] for entry in perf_map]
    by_name: dict[str, int] = defaultdict(int)
    for function, cost in inclusive.items():
        match = re.fullmatch(r"0x([0-9a-f]+)", function)
        if match is None:
            continue
        address = int(match.group(1), 16)
        index = bisect.bisect_right(starts, address) - 1
        if index >= 0 and perf_map[index][0] == address:
            by_name[perf_map[index][2].removeprefix("py::")] += cost
    return dict(by_name)


#: Functions the breakdown reads: key -> (qualname, end of the file path); a key without a
#: file is a C function. ``consumer`` is the application every stack ends in.
FUNCTIONS = {
    "middleware": ("JWTAuthMiddleware.__call__", "channels_jwt/middleware.py"),
    "consumer": ("AsyncConsumer.as_asgi.<locals>.app", "channels/consumer.py"),
    "extract": ("extract_token", "channels_jwt/extract.py"),
    "verify": ("TokenVerifier.averify", "channels_jwt/verify.py"),
    "inspect": ("TokenVerifier._inspect", "channels_jwt/verify.py"),
    "coalescer_get": ("LoopCoalescers.get", "channels_jwt/coalesce.py"),
    "coalescer_run": ("Coalescer._run", "channels_jwt/coalesce.py"),
    "load": ("_coalesced_lookups.<locals>.load", "channels_jwt/users.py"),
    "worker": ("_worker", "concurrent/futures/thread.py"),
    "close_old": ("close_old_connections", "django/db/__init__.py"),
    "fetch": ("_fetch_users_sync", "channels_jwt/users.py"),
    "connect": ("BaseDatabaseWrapper.connect", "django/db/backends/base/base.py"),
    "iterate": ("ModelIterable.__iter__", "django/db/models/query.py"),
    # database_user's lone lookup runs its SQL, compiled once, with raw(): the same rows.
    "iterate_raw": ("RawModelIterable.__iter__", "django/db/models/query.py"),
    "as_sql": ("SQLCompiler.as_sql", "django/db/models/sql/compiler.py"),
    "execute": ("CursorWrapper.execute", "django/db/backends/utils.py"),
    "fetch_rows": ("cursor_iter", "django/db/models/sql/compiler.py"),
    "fetch_rows_raw": ("CursorWrapper.__iter__", "django/db/backends/utils.py"),
    "schema": ("sqlite3Init", None),
}
#: The breakdown's rows: label -> {key: sign}, each key's figure the stack's minus no auth's
#: (per handshake); ``noauth_app`` is no auth's whole application (the consumer), which runs
#: inside the middleware: the middleware's cost beyond it is channels_jwt's (its guard's
#: wrappers around the consumer's send and receive included). The rows partition what these
#: functions cover; "the rest" is the remainder of the total.
GROUPS: tuple[tuple[str, dict[str, int]], ...] = (
    ("extraction (channels_jwt extract_token)", {"extract": 1}),
    ("verification: channels_jwt's own parse (TokenVerifier._inspect)", {"inspect": 1}),
    ("verification: PyJWT's HMAC and claim rules", {"verify": 1, "inspect": -1}),
    (
        "channels_jwt middleware, pipeline, resolver, guard (the rest of its event-loop code)",
        {"middleware": 1, "noauth_app": -1, "extract": -1, "verify": -1, "coalescer_get": -1},
    ),
    ("batching (channels_jwt.coalesce)", {"coalescer_get": 1, "coalescer_run": 1, "load": -1}),
    (
        "thread hop (database_sync_to_async, thread pool, both ways)",
        {"load": 1, "worker": 1, "close_old": -1, "fetch": -1},
    ),
    ("Django: open the connection (connect: sqlite3 open, functions, PRAGMAs)", {"connect": 1}),
    ("SQLite: read the schema (first statement on a new connection)", {"schema": 1}),
    ("Django: close the connection (close_old_connections)", {"close_old": 1}),
    (
        "ORM: build the query (raw() with the SQL compiled once; a batch: filter, list)",
        {"fetch": 1, "iterate": -1, "iterate_raw": -1},
    ),
    ("ORM: compile the SQL (SQLCompiler.as_sql)", {"as_sql": 1}),
    ("execute: Django's cursor wrapper, SQLite prepare and step", {"execute": 1, "schema": -1}),
    ("fetch the row", {"fetch_rows": 1, "fetch_rows_raw": 1}),
    (
        "ORM: the row to a User (converters, from_db), cursor()",
        {
            "iterate": 1,
            "iterate_raw": 1,
            "as_sql": -1,
            "connect": -1,
            "execute": -1,
            "fetch_rows": -1,
            "fetch_rows_raw": -1,
        },
    ),
)


def _function_costs(python: dict[str, int], inclusive: dict[str, int], n: int) -> dict[str, float]:
    """Per handshake, the inclusive cost of each of :data:`FUNCTIONS` in one run."""
    costs: dict[str, float] = {}
    for key, (qualname, file) in FUNCTIONS.items():
        if file is None:
            value = inclusive.get(qualname, 0)
        else:
            value = sum(
                cost
                for name, cost in python.items()
                if name.partition(":")[0] == qualname and name.partition(":")[2].endswith(file)
            )
        costs[key] = value / n
    return costs


def breakdown_rows(
    base: dict[str, float], stack: dict[str, float], total_extra: float
) -> list[tuple[str, float]]:
    """:data:`GROUPS` for one stack against no auth (per handshake), then the rest."""
    rows = []
    for label, terms in GROUPS:
        value = 0.0
        for key, sign in terms.items():
            if key == "noauth_app":
                value += sign * base["consumer"]
            else:
                value += sign * (stack[key] - base[key])
        rows.append((label, value))
    rest = total_extra - sum(value for _, value in rows)
    rows.append(("the rest: asyncio (tasks, wake-ups for the thread), the communicator", rest))
    return rows


def _segment_functions(
    path: Path, perf_map: list[tuple[int, int, str]], n: int
) -> tuple[float, dict[str, float], dict[str, int]]:
    total, _, inclusive = parse_callgrind(path)
    python = python_functions(inclusive, perf_map)
    return total / n, _function_costs(python, inclusive, n), python


def _breakdown_child(
    valgrind: str, python: str, workdir: Path, spec: dict[str, Any], conn_max_age: int | None
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, int], Path], list[tuple[int, int, str]]]:
    """Run one ``-X perf`` child under callgrind: per stack, totals and function costs."""
    process = _callgrind_child(
        valgrind, python, workdir, spec, conn_max_age=conn_max_age, trampolines=True
    )
    report = _finish(process, f"the callgrind child (-X perf, {workdir.name})")
    perf_map_path = Path(f"/tmp/perf-{report['pid']}.map")  # noqa: S108 - where CPython writes it
    try:
        perf_map = load_perf_map(perf_map_path)
    finally:
        perf_map_path.unlink(missing_ok=True)
    runs = report["runs"]
    dumps = dict(
        zip(((run["stack"], run["count"]) for run in runs), _run_dumps(workdir, runs), strict=True)
    )
    n = spec["counts"][0]
    per_stack: dict[str, dict[str, Any]] = {}
    for name in spec["stacks"]:
        one_total, one, one_python = _segment_functions(dumps[name, n], perf_map, n)
        two_total, two, two_python = _segment_functions(dumps[name, 2 * n], perf_map, n)
        per_stack[name] = {
            "total": two_total - one_total,  # (count of 2N - count of N) / N
            "functions": {key: two[key] - one[key] for key in two},
            "python": {
                key: (two_python.get(key, 0) - one_python.get(key, 0)) / n
                for key in {*one_python, *two_python}
            },
        }
    return per_stack, dumps, perf_map


def run_breakdown(
    fixtures: Any,
    python: str,
    *,
    handshakes: int,
    warmup: int,
    conn_max_age: int,
    output: Path = PROFILES_DIR,
) -> dict[str, Any]:
    """Callgrind over ``python -X perf`` (3.12+): the rows of :data:`GROUPS` per stack.

    Columns: ``hs256_token`` and ``hs256_db`` against no auth, and ``hs256_db`` with
    ``CONN_MAX_AGE=60`` (a second child, beside the first) when the run's is 0. Writes the
    table, the functions of ``hs256_db`` and ``callgrind_annotate``'s top lines to ``output``.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {"skipped": "valgrind not found"}
    check = subprocess.run(  # noqa: S603 - the interpreter we were given
        [
            python,
            "-c",
            "import platform as p; print(p.python_implementation(), p.python_version())",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    implementation, _, version = check.stdout.strip().partition(" ")
    major_minor = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if implementation != "CPython" or major_minor < (3, 12):
        return {"skipped": f"{python} is not CPython 3.12 or later (-X perf trampolines)"}
    spec = {
        "fixtures": _fixtures_dict(fixtures),
        "stacks": list(BREAKDOWN_STACKS),
        "counts": [handshakes, 2 * handshakes],
        "warmup": warmup,
    }
    persistent_spec = {**spec, "stacks": ["noauth", "hs256_db"]} if conn_max_age == 0 else None
    output.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="instructions-breakdown-") as tmp,
        ThreadPoolExecutor(2) as pool,
    ):
        main_dir, persistent_dir = Path(tmp, "main"), Path(tmp, "conn_max_age_60")
        main_dir.mkdir()
        persistent_dir.mkdir()
        main = pool.submit(_breakdown_child, valgrind, python, main_dir, spec, None)
        persistent = (
            pool.submit(_breakdown_child, valgrind, python, persistent_dir, persistent_spec, 60)
            if persistent_spec is not None
            else None
        )
        per_stack, dumps, perf_map = main.result()
        for name in ("noauth", "hs256_db"):
            _write_annotate(
                dumps[name, 2 * handshakes],
                perf_map,
                output / f"instructions_annotate_{name}.txt",
                2 * handshakes,
            )
        columns = {name: (per_stack["noauth"], per_stack[name]) for name in BREAKDOWN_STACKS[1:]}
        if persistent is not None:
            persistent_stacks = persistent.result()[0]
            columns["hs256_db, CONN_MAX_AGE=60"] = (
                persistent_stacks["noauth"],
                persistent_stacks["hs256_db"],
            )
    result: dict[str, Any] = {
        "python": f"CPython {version}",  # the breakdown's, not necessarily this process's
        "handshakes": handshakes,
        "conn_max_age": conn_max_age,
        "totals": {},
        "columns": {},
    }
    for column, (base, stack) in columns.items():
        result["totals"][column] = {"noauth": base["total"], "stack": stack["total"]}
        result["columns"][column] = breakdown_rows(
            base["functions"], stack["functions"], stack["total"] - base["total"]
        )
        name = column.replace(", CONN_MAX_AGE=", "_conn_max_age_")
        (output / f"instructions_functions_{name}.txt").write_text(
            _render_functions(base["python"], stack["python"], column) + "\n"
        )
    (output / "instructions_breakdown.txt").write_text(render_breakdown(result) + "\n")
    return result


def _render_functions(
    base: dict[str, float], stack: dict[str, float], column: str, top: int = 120
) -> str:
    differences = {key: stack.get(key, 0.0) - base.get(key, 0.0) for key in {*base, *stack}}
    ordered = sorted(differences.items(), key=lambda item: -item[1])[:top]
    rows = [
        [
            f"{value / 1e3:+.1f}",
            f"{stack.get(key, 0.0) / 1e3:.1f}",
            f"{base.get(key, 0.0) / 1e3:.1f}",
            _short(key),
        ]
        for key, value in ordered
    ]
    return table(
        ["extra k instr/hs", "stack", "noauth", "Python function (inclusive)"],
        rows,
        f"Inclusive instructions per handshake by Python function, {column} minus no auth"
        " (callgrind over CPython -X perf trampolines; a function's callees are in its figure)",
    )


def _short(name: str) -> str:
    """``QuerySet.filter (django/db/models/query.py)``: the path from its package on."""
    qualname, _, path = name.partition(":")
    path = re.sub(r"^.*/(site-packages|lib/python3\.[0-9]+)/", "", path)
    if "/channels_jwt/" in path:
        path = "channels_jwt/" + path.rsplit("/channels_jwt/", 1)[1]
    return f"{qualname} ({path})"


def _write_annotate(
    dump: Path,
    perf_map: list[tuple[int, int, str]],
    target: Path,
    handshakes: int,
    lines: int = 120,
) -> None:
    """``callgrind_annotate --inclusive=yes`` of one run, trampolines named, the top lines."""
    annotate = shutil.which("callgrind_annotate")
    if annotate is None:
        return
    completed = subprocess.run(  # noqa: S603 - valgrind's own script, fixed arguments
        [annotate, "--inclusive=yes", "--auto=no", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    starts = {entry[0]: entry[2].removeprefix("py::") for entry in perf_map}

    def named(match: re.Match[str]) -> str:
        python = starts.get(int(match.group(1), 16))
        return f"[py] {_short(python)}" if python else match.group(0)

    out = [f"# {handshakes} handshakes; trampoline addresses replaced by the Python function"]
    for line in completed.stdout.splitlines()[: lines + 25]:
        line = re.sub(r"\?\?\?:0x0*([0-9a-f]+) \[\?\?\?\]", named, line)
        out.append(re.sub(r"\S*/Python-3[0-9.]+/", "", line))
    target.write_text("\n".join(out) + "\n")


def render_breakdown(result: dict[str, Any]) -> str:
    if result.get("skipped"):
        return f"breakdown: skipped ({result['skipped']})"
    columns = list(result["columns"])
    labels = [label for label, _ in result["columns"][columns[0]]]
    rows = [
        [label, *(f"{result['columns'][column][index][1] / 1e3:.0f}" for column in columns)]
        for index, label in enumerate(labels)
    ]
    totals = result["totals"]
    rows.append(
        [
            "total extra over no auth",
            *(f"{(t['stack'] - t['noauth']) / 1e3:.0f}" for t in totals.values()),
        ]
    )
    rows.append(["(no auth itself)", *(f"{t['noauth'] / 1e3:.0f}" for t in totals.values())])
    title = (
        "Where the extra instructions go: k instructions per handshake over no auth"
        f" (callgrind over {result['python']} -X perf, {2 * result['handshakes']} minus"
        f" {result['handshakes']} handshakes; CONN_MAX_AGE={result['conn_max_age']} unless said)"
    )
    return table(["where", *columns], rows, title)


# --- command line --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="three stacks, 10 handshakes")
    parser.add_argument("--stacks", default="", help="comma-separated stacks (default: all)")
    parser.add_argument("--handshakes", type=int, help="N (runs of N and 2N handshakes)")
    parser.add_argument("--tool", choices=("auto", "callgrind", "perf"), default="auto")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="where the instructions go (needs --python of CPython 3.12+ with the project's"
        " requirements); writes benchmarks/profiles/instructions_*.txt",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter of the breakdown")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0

    from benchmarks.run import ALL_STACKS

    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    import django

    from benchmarks.fixtures import DATABASE_ENV, STATE_DIR, load_keys, prepare_database

    STATE_DIR.mkdir(parents=True, exist_ok=True)
    database = STATE_DIR / f"instructions-{os.getpid()}.sqlite3"
    os.environ[DATABASE_ENV] = str(database)
    keys = load_keys()
    django.setup()
    conn_max_age = int(os.environ.get("BENCH_CONN_MAX_AGE", "0"))
    try:
        fixtures = prepare_database(keys)
        if args.breakdown:
            result = run_breakdown(
                fixtures,
                args.python,
                handshakes=args.handshakes or 50,
                warmup=20,
                conn_max_age=conn_max_age,
            )
            print(render_breakdown(result))
            return 0
        stacks = [s.strip() for s in args.stacks.split(",") if s.strip()] or (
            ["noauth", "hs256_token", "hs256_db"] if args.quick else list(ALL_STACKS)
        )
        result = run_instructions(
            fixtures,
            stacks,
            handshakes=args.handshakes or (10 if args.quick else 100),
            perf_handshakes=args.handshakes or (200 if args.quick else 1000),
            warmup=5 if args.quick else 20,
            conn_max_age=conn_max_age,
            conn_max_age_60=not args.quick,
            tool=args.tool,
        )
        print(render_instructions(result))
    finally:
        from django.db import connections

        connections.close_all()
        for leftover in STATE_DIR.glob(database.name + "*"):
            leftover.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
