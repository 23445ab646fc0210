"""Where a handshake's time goes: pyinstrument over in-process handshakes of one stack.

The profiler samples the event-loop thread (``async_mode="disabled"``: every sample counts,
whichever task is running), so time the loop spends waiting for channels' database thread
shows up as the selector's poll. What that thread does for one ``database_user`` lookup is
profiled separately by replaying it on the main thread: ``close_old_connections()``, the
query, ``close_old_connections()`` (exactly what ``database_sync_to_async`` runs).

Each profile is summarised as self time per library and inclusive time per channels_jwt
function (time per handshake, profiler overhead included); the full text tree is written to
``benchmarks/profiles/<name>.txt``.

A memory breakdown goes with it: ``tracemalloc`` over in-process connections left open (each
one received its frame; authenticated ones have their expiry timer armed), Python heap per
connection, and the source lines whose retained allocations differ from the no-auth stack.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from channels.testing import WebsocketCommunicator

from benchmarks.fixtures import Fixtures
from benchmarks.inprocess import timed_batch
from benchmarks.stacks import BY_NAME, ASGIApp
from benchmarks.stats import table

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
LIBRARIES = (
    ("/channels_jwt/", "channels_jwt"),
    ("/channels/", "channels"),
    ("/asgiref/", "asgiref"),
    ("/django/", "django"),
    ("/jwt/", "PyJWT"),
    ("/cryptography/", "cryptography"),
    ("/benchmarks/", "benchmark harness"),
    ("/asyncio/", "asyncio"),
    ("/sqlite3/", "sqlite3"),
    ("/json/", "json"),
    ("/logging/", "logging"),
    ("/concurrent/", "concurrent.futures"),
)


def _library(path: str | None) -> str:
    for fragment, name in LIBRARIES:
        if path and fragment in path:
            return name
    return "other (stdlib)"


_WAITING = ("poll", "select", "sleep")


def _walk(
    frame: Any, ancestors: tuple[tuple[str, str], ...] = (), inherited: str = "other"
) -> Iterator[tuple[Any, str, bool]]:
    """Every real frame, its library, and whether its function is already on the stack.

    A built-in function counts towards the library that called it, except the selector's
    poll, where the event loop waits (for channels' database thread, in these profiles).
    """
    if frame.is_synthetic:
        return
    if frame.file_path == "<built-in>":
        waiting = any(word in (frame.function or "") for word in _WAITING)
        library = "event loop idle (waiting for another thread)" if waiting else inherited
    else:
        library = _library(frame.file_path)
    identity = (frame.file_path or "", frame.function or "")
    yield frame, library, identity in ancestors
    for child in frame.children:
        yield from _walk(child, (*ancestors, identity), library)


def summarise(root: Any, handshakes: int) -> dict[str, Any]:
    """Self time per library and inclusive time per channels_jwt function, per handshake."""
    total = root.time
    by_library: dict[str, float] = {}
    functions: dict[str, float] = {}
    for frame, library, recursive in _walk(root):
        by_library[library] = by_library.get(library, 0.0) + frame.total_self_time
        if "/channels_jwt/" in (frame.file_path or "") and not recursive:
            name = f"{Path(frame.file_path).name}:{frame.function}"
            functions[name] = functions.get(name, 0.0) + frame.time
    per = 1e6 / handshakes
    return {
        "handshakes": handshakes,
        "total_us_per_handshake": total * per,
        "self_time_by_library_us": {
            name: seconds * per
            for name, seconds in sorted(by_library.items(), key=lambda item: -item[1])
        },
        "channels_jwt_inclusive_us": {
            name: seconds * per
            for name, seconds in sorted(functions.items(), key=lambda item: -item[1])[:15]
        },
    }


def _batch_runner(app: ASGIApp, stack: Any, fixtures: Fixtures, count: int) -> Callable[[], object]:
    return lambda: asyncio.run(timed_batch(app, stack, fixtures, count))


def _profile(name: str, run: Callable[[], object], handshakes: int) -> dict[str, Any]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.00025, async_mode="disabled")
    profiler.start()
    run()
    session = profiler.stop()
    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
    (PROFILES_DIR / f"{name}.txt").write_text(
        profiler.output_text(unicode=True, color=False, show_all=False)
    )
    root = session.root_frame(trim_stem=False)
    summary = summarise(root, handshakes) if root is not None else {}
    summary["file"] = str((PROFILES_DIR / f"{name}.txt").relative_to(PROFILES_DIR.parent.parent))
    return summary


def run_profiles(
    apps: dict[str, ASGIApp], fixtures: Fixtures, stack_names: list[str], handshakes: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in stack_names:
        stack = BY_NAME[name]
        app = apps[name]
        asyncio.run(timed_batch(app, stack, fixtures, 100))  # warm up outside the profile
        results[name] = _profile(
            name,
            _batch_runner(app, stack, fixtures, handshakes),
            handshakes,
        )
    if "hs256_db" in stack_names:
        results["database_user_thread"] = _profile(
            "database_user_thread", lambda: _replay_lookups(fixtures, handshakes), handshakes
        )
    results["memory"] = memory_breakdown(apps, fixtures, stack_names, min(handshakes, 2000))
    results["steps"] = step_costs(fixtures)
    return results


async def _retained(app: ASGIApp, name: str, fixtures: Fixtures, count: int) -> Any:
    """A tracemalloc snapshot diff over ``count`` connections left open on one stack."""
    stack = BY_NAME[name]
    subprotocols, headers = stack.client_request(fixtures)
    await timed_batch(app, stack, fixtures, 20)
    held = []
    gc.collect()
    tracemalloc.start(1)
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(count):
            communicator = WebsocketCommunicator(
                app, f"/{name}/", headers=list(headers), subprotocols=list(subprotocols)
            )
            await communicator.connect()
            await communicator.receive_output()
            held.append(communicator)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    for communicator in held:
        await communicator.disconnect()
    return after.compare_to(before, "lineno")


def _short(frame: Any) -> str:
    """``channels_jwt/users.py:192``, ``decoder.py:353``: where an allocation was made."""
    path = Path(frame.filename)
    if "/channels_jwt/" in frame.filename:
        return f"channels_jwt/{path.name}:{frame.lineno}"
    return f"{path.parent.name}/{path.name}:{frame.lineno}"


def memory_breakdown(
    apps: dict[str, ASGIApp], fixtures: Fixtures, stack_names: list[str], count: int
) -> dict[str, Any]:
    """Python heap retained per open connection, and by source line versus no auth."""
    by_line: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    for name in ["noauth", *stack_names]:
        stats = asyncio.run(_retained(apps[name], name, fixtures, count))
        totals[name] = sum(stat.size_diff for stat in stats) / count
        by_line[name] = {}
        for stat in stats:
            line = _short(stat.traceback[0])
            by_line[name][line] = by_line[name].get(line, 0.0) + stat.size_diff / count
    result: dict[str, Any] = {"connections": count, "bytes_per_connection": totals, "extra": {}}
    for name in stack_names:
        lines = set(by_line[name]) | set(by_line["noauth"])
        extra = {
            line: by_line[name].get(line, 0.0) - by_line["noauth"].get(line, 0.0) for line in lines
        }
        top = sorted(extra.items(), key=lambda item: -item[1])[:15]
        result["extra"][name] = {line: round(size) for line, size in top if size >= 16}
    return result


def step_costs(fixtures: Fixtures, iterations: int = 2000) -> dict[str, float | None]:
    """The CPU cost of each step of an HS256 + token_user handshake, timed alone (µs, best of 5).

    These reach into channels_jwt's internals (``Pipeline``, ``extract_token``, ...): a step
    whose internals were renamed is reported as ``None`` instead of failing the run.
    """
    import time
    import timeit

    from channels_jwt.conf import Settings, activate, deactivate

    settings = Settings({"USER_RESOLVER": "channels_jwt.users.token_user"})
    token = fixtures.tokens["HS256"]
    scope = {
        "type": "websocket",
        "path": "/hs256_token/",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"sec-websocket-protocol", f"access_token, {token}".encode()),
        ],
        "subprotocols": ["access_token", token],
    }
    results: dict[str, float | None] = {}

    def timed(label: str, build: Callable[[], Callable[[], Any]]) -> None:
        try:
            function = build()
            function()
            best = min(timeit.repeat(function, number=iterations, repeat=5))
            results[label] = best / iterations * 1e6
        except Exception:
            results[label] = None

    def timed_async(label: str, factory: Callable[[], Any]) -> None:
        async def many() -> float:
            started = time.perf_counter()
            for _ in range(iterations):
                await factory()
            return time.perf_counter() - started

        try:
            loop = asyncio.new_event_loop()
            try:
                best = min(loop.run_until_complete(many()) for _ in range(5))
            finally:
                loop.close()
            results[label] = best / iterations * 1e6
        except Exception:
            results[label] = None

    activation = activate(settings)
    try:
        from channels_jwt.pipeline import Pipeline

        pipeline = Pipeline.for_settings(settings)
        claims = pipeline.verifier.verify(token)
        timed(
            "Pipeline.for_settings (cached pipeline)",
            lambda: lambda: Pipeline.for_settings(settings),
        )
        timed("one settings read (Settings.USER_ID_FIELD)", lambda: lambda: settings.USER_ID_FIELD)

        def extract() -> Callable[[], Any]:
            from channels_jwt.extract import extract_token

            return lambda: extract_token(scope, pipeline.extraction)

        timed("extract_token (subprotocol)", extract)
        timed(
            "TokenVerifier._inspect (own header/payload parse)",
            lambda: lambda: pipeline.verifier._inspect(token),
        )
        timed(
            "TokenVerifier.verify (whole, HS256)", lambda: lambda: pipeline.verifier.verify(token)
        )

        def user_id() -> Callable[[], Any]:
            from channels_jwt.config import current_config
            from channels_jwt.users import _user_id

            config = current_config()
            return lambda: _user_id(config, claims)

        timed("users._user_id (settings + id canonicalisation)", user_id)
        timed_async("token_user (awaited)", lambda: pipeline.resolve_user(claims, scope))
        timed_async(
            "Pipeline.authenticate (verify + token_user, awaited)",
            lambda: pipeline.authenticate(token, scope),
        )
    finally:
        deactivate(activation)
    # The whole middleware around a bare ASGI app (no consumer, no communicator, no thread
    # hop): connect, accept, one frame, disconnect. The difference is everything it does.
    from channels_jwt import JWTAuthMiddleware

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        await receive()

    wrapped = JWTAuthMiddleware(bare, settings={"USER_RESOLVER": "channels_jwt.users.token_user"})
    inbox = ({"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000})

    def one(app: Any) -> Callable[[], Any]:
        async def handshake() -> None:
            messages = iter(inbox)

            async def receive() -> Any:
                return next(messages)

            async def send(message: Any) -> None:
                return None

            await app(dict(scope), receive, send)

        return handshake

    timed_async("bare ASGI app handshake (no middleware)", one(bare))
    timed_async("the same through JWTAuthMiddleware (HS256 + token_user)", one(wrapped))
    bare_cost = results.get("bare ASGI app handshake (no middleware)")
    wrapped_cost = results.get("the same through JWTAuthMiddleware (HS256 + token_user)")
    if bare_cost is not None and wrapped_cost is not None:
        results["JWTAuthMiddleware's whole cost (difference)"] = wrapped_cost - bare_cost
    return results


def _replay_lookups(fixtures: Fixtures, count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import close_old_connections

    from channels_jwt.users import _fetch_users_sync

    user_model = get_user_model()
    for _ in range(count):
        close_old_connections()
        _fetch_users_sync(user_model, "id", [fixtures.user_pk])
        close_old_connections()


def render_profiles(result: dict[str, Any]) -> str:
    out = []
    for name, summary in result.items():
        if name in ("memory", "steps"):
            continue
        libraries = list(summary["self_time_by_library_us"].items())[:8]
        out.append(
            table(
                ["self time by library", "µs/handshake"],
                [[library, f"{value:.1f}"] for library, value in libraries],
                f"Profile {name}: {summary['total_us_per_handshake']:.0f} µs per handshake"
                f" sampled (profiler overhead included); full tree in {summary['file']}",
            )
        )
        functions = list(summary["channels_jwt_inclusive_us"].items())[:10]
        if functions:
            out.append(
                table(
                    ["channels_jwt function (inclusive)", "µs/handshake"],
                    [[function, f"{value:.1f}"] for function, value in functions],
                )
            )
    if "steps" in result:
        out.append(
            table(
                ["step (HS256 + token_user)", "µs"],
                [
                    [step, "n/a" if cost is None else f"{cost:.1f}"]
                    for step, cost in result["steps"].items()
                ],
                "CPU per step, each timed alone (best of 5; no profiler)",
            )
        )
    if "memory" in result:
        out.append(render_memory_breakdown(result["memory"]))
    return "\n".join(out)


def render_memory_breakdown(result: dict[str, Any]) -> str:
    totals = result["bytes_per_connection"]
    out = [
        table(
            ["stack", "Python heap bytes per open connection", "extra vs no auth"],
            [
                [name, f"{size:.0f}", f"{size - totals['noauth']:+.0f}"]
                for name, size in totals.items()
            ],
            f"Memory breakdown (tracemalloc, {result['connections']} in-process connections"
            " left open)",
        )
    ]
    for name, lines in result["extra"].items():
        out.append(
            table(
                [f"{name}: allocated at (retained, vs no auth)", "bytes/conn"],
                [[line, str(size)] for line, size in lines.items()],
            )
        )
    return "\n".join(out)
