"""A flood of failed handshakes against the denylist, on real Redis servers (issue 15, item 4).

Each test starts its own ``redis-server`` (one or two), revokes a token, then floods the real
middleware with handshakes that offer no token at all from distinct IPv6 addresses
(2001:db8::/32), ``RATE_LIMIT`` on: each writes a rate-limit counter. The memory limit is set
once the clients are connected, ``HEADROOM`` above what the server then uses, so it is the
flood's counters that fill it. Then the revoked token comes back.

- The recommended setup (the denylist on a server of its own that never evicts, the counters
  on one that evicts at will) refuses it with 4441 after the whole flood, and checks clean.
- One server shared by both (the same alias, another database number, another key prefix)
  evicts the entry under ``allkeys-lru`` and under ``volatile-lru`` (the entry has a TTL, as
  every counter does), and the token is accepted again. One that never evicts keeps the
  entry, but fills up: then the handshakes of new addresses fail closed (4503). Check W007
  warns of each of them.

The handshakes run in this test's context, not in the empty one ``ApplicationCommunicator``
gives every app: Django's caches are per context, so each handshake would open Redis clients
of its own, and the server's memory would be theirs, freed whenever they are collected.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware, arevoke_token
from channels_jwt.checks import check_settings
from channels_jwt.conf import Settings
from channels_jwt.revocation import denylist_key
from tests.harness import (
    HS_KEY,
    MARKER,
    check_problems,
    claims_for,
    close_message,
    hs_token,
    websocket_scope,
)
from tests.redis.conftest import own_redis
from tests.test_denylist_store import GreetingApp

pytestmark = pytest.mark.live

#: Addresses in the flood: each fails one handshake, and writes one counter.
FLOOD = 2000
#: Handshakes in flight at once.
BATCH = 100
#: Bytes the server may use above what it uses once its clients are connected (~500
#: counters' worth on Redis 7).
HEADROOM = 64 * 1024
#: Seconds any single step may take.
TIMEOUT = 10.0
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
SETTINGS = {
    "SIGNING_KEY": HS_KEY,
    "TOKEN_SOURCES": ["subprotocol"],
    "USER_RESOLVER": "channels_jwt.users.token_user",
    "REVOCATION_CHECK": "channels_jwt.revocation.cache_denylist",
    "REVOCATION_CACHE": "denylist",
    "RATE_LIMIT": "5/min",
    "RATE_LIMIT_CACHE": "ratelimit",
}
ACCEPTED = "accepted"
REVOKED = close_message(4441, "token_revoked")
MISSING = close_message(4401, "token_missing")
UNAVAILABLE = close_message(4503, "auth_unavailable")


def cache_on(server: redis.Redis, database: int = 0, **options: Any) -> dict[str, Any]:
    """A Django ``RedisCache`` on ``server``'s ``database``."""
    port = server.connection_pool.connection_kwargs["port"]
    return {"BACKEND": REDIS_CACHE, "LOCATION": f"redis://127.0.0.1:{port}/{database}", **options}


@contextmanager
def project(caches_by_alias: dict[str, dict[str, Any]], **settings: Any) -> Iterator[None]:
    """``SETTINGS`` (plus ``settings``) with these caches; their clients opened here.

    Opened in the caller's context, so the handshakes it starts share them.
    """
    local = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    everything = {"default": {**local, "LOCATION": uuid.uuid4().hex}, **caches_by_alias}
    with override_settings(CACHES=everything, CHANNELS_JWT={**SETTINGS, **settings}):
        for alias in caches_by_alias:
            caches[alias].get("warm-up")
        yield


async def handshake(app: Any, token: str | None, address: str) -> Any:
    """A handshake from ``address`` offering ``token``: ``ACCEPTED``, or the close message."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    offered = [] if token is None else [MARKER, token]
    scope = websocket_scope(subprotocols=offered, client=(address, 50000))
    running = asyncio.create_task(app(scope, inbox.get, outbox.put))
    outcome = await asyncio.wait_for(outbox.get(), TIMEOUT)
    if outcome["type"] == "websocket.accept":
        outcome = await asyncio.wait_for(outbox.get(), TIMEOUT)
    if outcome["type"] == "websocket.send":
        outcome = ACCEPTED
        inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(running, TIMEOUT)
    return outcome


def address(number: int) -> str:
    return f"2001:db8::{number:x}"


async def flood(
    app: Any, server: redis.Redis, key: str, *, until_evicted: bool
) -> tuple[Counter[str], int]:
    """``FLOOD`` handshakes without a token from as many addresses, ``BATCH`` at a time.

    Returns their outcomes (counted) and how many addresses it took to evict ``key`` from
    ``server`` (``FLOOD + 1`` if it never was); with ``until_evicted``, stops there.
    """
    outcomes: Counter[str] = Counter()
    evicted_after = FLOOD + 1
    for start in range(0, FLOOD, BATCH):
        batch = [handshake(app, None, address(n)) for n in range(start, start + BATCH)]
        outcomes.update(str(outcome) for outcome in await asyncio.gather(*batch))
        if evicted_after > FLOOD and not server.exists(key):  # EXISTS leaves its LRU alone
            evicted_after = start + BATCH
            if until_evicted:
                break
    return outcomes, evicted_after


async def limit_memory(app: Any, server: redis.Redis) -> None:
    """Let ``server`` use ``HEADROOM`` bytes more than it uses with every client connected.

    ``BATCH`` handshakes at once, from addresses outside the flood, connect them first.
    """
    await asyncio.gather(*(handshake(app, None, f"2001:db8:2::{n:x}") for n in range(BATCH)))
    used = server.info("memory")["used_memory"]
    server.config_set("maxmemory", used + HEADROOM)


def evicted_keys(server: redis.Redis) -> int:
    return int(server.info("stats")["evicted_keys"])


async def revoked_token() -> tuple[str, str]:
    """A token revoked now, and the key of its denylist entry (as Django's cache writes it)."""
    claims = claims_for(1)
    await arevoke_token(claims)
    # The Redis LRU clock counts seconds: a moment later, every counter is younger.
    await asyncio.sleep(1.1)
    return hs_token(claims), f":1:{denylist_key(claims)}"


def problems() -> list[str]:
    return check_problems(check_settings(Settings()))


async def test_a_flood_leaves_the_denylist_of_the_recommended_setup_alone(
    tmp_path: Path,
) -> None:
    with (
        own_redis(tmp_path / "denylist", "--maxmemory-policy", "noeviction") as denylist,
        own_redis(tmp_path / "counters", "--maxmemory-policy", "allkeys-lru") as counters,
        project({"denylist": cache_on(denylist), "ratelimit": cache_on(counters)}),
    ):
        app = JWTAuthMiddleware(GreetingApp())
        token, key = await revoked_token()
        await limit_memory(app, counters)

        outcomes, evicted_after = await flood(app, denylist, key, until_evicted=False)

        assert outcomes == {str(MISSING): FLOOD}
        # The counters' server was full and evicting, the denylist's never evicted.
        assert evicted_keys(counters) > 0
        assert (evicted_after, evicted_keys(denylist)) == (FLOOD + 1, 0)
        assert await handshake(app, token, "2001:db8:1::1") == REVOKED
        assert problems() == []


@pytest.mark.parametrize(
    ("policy", "counters", "overrides"),
    [
        pytest.param("allkeys-lru", {}, {"RATE_LIMIT_CACHE": "denylist"}, id="same-alias"),
        pytest.param("allkeys-lru", {"database": 1}, {}, id="other-database"),
        pytest.param("allkeys-lru", {"KEY_PREFIX": "counters"}, {}, id="other-key-prefix"),
        pytest.param("volatile-lru", {"database": 1}, {}, id="volatile-lru-other-database"),
    ],
)
async def test_a_flood_evicts_the_denylist_entry_from_a_shared_server(
    tmp_path: Path,
    policy: str,
    counters: dict[str, Any],
    overrides: dict[str, Any],
) -> None:
    with (
        own_redis(tmp_path / "shared", "--maxmemory-policy", policy) as shared,
        project(
            {"denylist": cache_on(shared), "ratelimit": cache_on(shared, **counters)},
            **overrides,
        ),
    ):
        app = JWTAuthMiddleware(GreetingApp())
        token, key = await revoked_token()
        await limit_memory(app, shared)

        _, evicted_after = await flood(app, shared, key, until_evicted=True)

        assert evicted_after <= FLOOD
        assert await handshake(app, token, "2001:db8:1::1") == ACCEPTED
        assert "channels_jwt.W007" in problems()


async def test_a_shared_server_that_never_evicts_fills_up_and_fails_handshakes(
    tmp_path: Path,
) -> None:
    with (
        own_redis(tmp_path / "shared", "--maxmemory-policy", "noeviction") as shared,
        project({"denylist": cache_on(shared), "ratelimit": cache_on(shared, 1)}),
    ):
        app = JWTAuthMiddleware(GreetingApp())
        token, key = await revoked_token()
        await limit_memory(app, shared)

        outcomes, evicted_after = await flood(app, shared, key, until_evicted=False)

        # Nothing was evicted, but the flood filled the server: from then on a handshake
        # from a new address (anyone's first) cannot be counted, and fails closed.
        assert (evicted_after, evicted_keys(shared)) == (FLOOD + 1, 0)
        assert outcomes.keys() == {str(MISSING), str(UNAVAILABLE)}
        assert outcomes[str(UNAVAILABLE)] >= FLOOD // 4
        assert await handshake(app, token, "2001:db8:1::1") in (REVOKED, UNAVAILABLE)
        assert "channels_jwt.W007" in problems()
