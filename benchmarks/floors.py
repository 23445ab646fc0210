"""Floors: the cost of the unavoidable parts of an authenticated handshake, measured alone.

- PyJWT's ``jwt.decode`` per algorithm, with the key already parsed (the cheapest possible
  verification), and channels_jwt's ``TokenVerifier.verify`` on the same token (PyJWT plus
  the package's structural and claim checks).
- One user lookup: Django's async ORM (``await User.objects.aget(pk=...)``, which keeps its
  connection open between calls), ``database_sync_to_async`` (what channels and channels_jwt
  use: with ``CONN_MAX_AGE=0`` it opens and closes an SQLite connection every call), the bare
  thread hop of ``database_sync_to_async`` with no query, and the query alone on an open
  connection in the calling thread.

Each figure is the best (minimum) of ``repeats`` timings of ``iterations`` calls, per call, as
``timeit`` recommends for micro-benchmarks: these are floors, and a busy machine only ever
adds time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from benchmarks.fixtures import ASYMMETRIC, Fixtures
from benchmarks.stats import table


def _time_sync(function: Callable[[], Any], iterations: int, repeats: int) -> float:
    per_call = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(iterations):
            function()
        per_call.append((time.perf_counter() - started) / iterations * 1e6)
    return min(per_call)


async def _time_async(
    function: Callable[[], Awaitable[Any]], iterations: int, repeats: int
) -> float:
    per_call = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(iterations):
            await function()
        per_call.append((time.perf_counter() - started) / iterations * 1e6)
    return min(per_call)


def _decode(token: str, key: Any, algorithm: str) -> Callable[[], Any]:
    return lambda: jwt.decode(token, key, algorithms=[algorithm])


def _verify(verifier: Any, token: str) -> Callable[[], Any]:
    return lambda: verifier.verify(token)


def _verifier(overrides: dict[str, Any]) -> Any:
    from channels_jwt.conf import Config, Settings
    from channels_jwt.verify import TokenVerifier

    return TokenVerifier.from_config(Config.from_settings(Settings(overrides)))


def token_floors(
    keys: dict[str, Any], fixtures: Fixtures, iterations: int, repeats: int
) -> list[dict[str, Any]]:
    """PyJWT decode alone and channels_jwt's verifier, per algorithm (µs per call)."""
    rows = []
    secret = keys["hs256"]
    token = fixtures.tokens["HS256"]
    verifier = _verifier({})
    rows.append(
        {
            "algorithm": "HS256",
            "pyjwt_decode_us": _time_sync(
                lambda: jwt.decode(token, secret, algorithms=["HS256"]), iterations, repeats
            ),
            "verifier_us": _time_sync(lambda: verifier.verify(token), iterations, repeats),
        }
    )
    for algorithm in ASYMMETRIC:
        public = serialization.load_pem_public_key(keys[algorithm]["public"].encode())
        pem = keys[algorithm]["public"]
        signed = fixtures.tokens[algorithm]
        verifier_for = _verifier({"ALGORITHMS": [algorithm], "VERIFYING_KEY": pem})
        rows.append(
            {
                "algorithm": algorithm,
                "pyjwt_decode_us": _time_sync(
                    _decode(signed, public, algorithm),
                    iterations,
                    repeats,
                ),
                "pyjwt_decode_pem_us": _time_sync(
                    _decode(signed, pem, algorithm),
                    iterations,
                    repeats,
                ),
                "verifier_us": _time_sync(
                    _verify(verifier_for, signed),
                    iterations,
                    repeats,
                ),
            }
        )
    return rows


async def lookup_floors(fixtures: Fixtures, iterations: int, repeats: int) -> dict[str, float]:
    """One user lookup, four ways (µs per call)."""
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    pk = fixtures.user_pk

    def get() -> Any:
        return user_model.objects.get(pk=pk)

    def nothing() -> None:
        return None

    async def aget() -> Any:
        return await user_model.objects.aget(pk=pk)

    return {
        "orm_aget_us": await _time_async(aget, iterations, repeats),
        "database_sync_to_async_get_us": await _time_async(
            database_sync_to_async(get), iterations, repeats
        ),
        "database_sync_to_async_noop_us": await _time_async(
            database_sync_to_async(nothing), iterations, repeats
        ),
    }


def sync_lookup_floor(fixtures: Fixtures, iterations: int, repeats: int) -> float:
    """The query alone, in this thread, on a connection kept open (µs per call)."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    user_model = get_user_model()
    pk = fixtures.user_pk
    try:
        return _time_sync(lambda: user_model.objects.get(pk=pk), iterations, repeats)
    finally:
        connections.close_all()


def run_floors(
    keys: dict[str, Any], fixtures: Fixtures, *, iterations: int, repeats: int
) -> dict[str, Any]:
    lookup = asyncio.run(lookup_floors(fixtures, iterations, repeats))
    lookup["sync_get_open_connection_us"] = sync_lookup_floor(fixtures, iterations, repeats)
    return {
        "tokens": token_floors(keys, fixtures, iterations, repeats),
        "lookup": lookup,
        "iterations": iterations,
        "repeats": repeats,
    }


def render_floors(result: dict[str, Any]) -> str:
    rows = [
        [
            row["algorithm"],
            f"{row['pyjwt_decode_us']:.1f}",
            f"{row['pyjwt_decode_pem_us']:.1f}" if "pyjwt_decode_pem_us" in row else "n/a",
            f"{row['verifier_us']:.1f}",
        ]
        for row in result["tokens"]
    ]
    out = table(
        [
            "algorithm",
            "jwt.decode, parsed key µs",
            "jwt.decode, PEM string µs",
            "channels_jwt TokenVerifier.verify µs",
        ],
        rows,
        "Floors: token verification alone (per call)",
    )
    lookup = result["lookup"]
    labels = {
        "orm_aget_us": "await User.objects.aget(pk=...) (async ORM)",
        "database_sync_to_async_get_us": "database_sync_to_async(User.objects.get)(pk=...)",
        "database_sync_to_async_noop_us": "database_sync_to_async(no-op): the thread hop alone",
        "sync_get_open_connection_us": "User.objects.get(pk=...) in-thread, connection open",
    }
    out += "\n" + table(
        ["user lookup", "µs"],
        [[labels[key], f"{value:.1f}"] for key, value in lookup.items()],
        "Floors: one user lookup (file SQLite, CONN_MAX_AGE=0)",
    )
    return out
