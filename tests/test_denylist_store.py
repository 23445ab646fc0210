"""Where the denylist lives: checks W006, W007 and W008, and the hazards they warn of.

W007 compares stores, not aliases: two aliases on one Redis or memcached server (any database
number, any key prefix), one database table, one directory, or one local-memory LOCATION are
one store, with one memory limit and one eviction. The hazards are shown for real here with
local-memory and dummy caches (the middleware in-process, a flood of handshakes without a token
from distinct IPv6 addresses); ``tests/redis/test_denylist_eviction.py`` shows them on Redis.
Only the settings of the Redis and memcached caches are read here: nothing connects to them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.cache import caches
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware, arevoke_token
from channels_jwt.revocation import denylist_key
from tests.harness import (
    CLEAN,
    MARKER,
    check_problems,
    claims_for,
    close_message,
    hs_token,
    only_check_message,
    run_checks,
    websocket_scope,
)

DENYLIST = {
    **CLEAN,
    "USER_RESOLVER": "channels_jwt.users.token_user",
    "REVOCATION_CHECK": "channels_jwt.revocation.cache_denylist",
    "REVOCATION_CACHE": "denylist",
    "RATE_LIMIT": "5/min",
    "RATE_LIMIT_CACHE": "ratelimit",
}
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
DUMMY = "django.core.cache.backends.dummy.DummyCache"
REDIS = "django.core.cache.backends.redis.RedisCache"
DJANGO_REDIS = "django_redis.cache.RedisCache"
MEMCACHED = "django.core.cache.backends.memcached.PyMemcacheCache"
PYLIBMC = "django.core.cache.backends.memcached.PyLibMCCache"
DATABASE = "django.core.cache.backends.db.DatabaseCache"
FILES = "django.core.cache.backends.filebased.FileBasedCache"
#: Addresses in a flood, at most.
FLOOD = 2000
BATCH = 100
TIMEOUT = 5.0
ACCEPTED = "accepted"
REVOKED = close_message(4441, "token_revoked")
MISSING = close_message(4401, "token_missing")


def cache(backend: str, location: Any = None, **options: Any) -> dict[str, Any]:
    return {"BACKEND": backend, **({} if location is None else {"LOCATION": location}), **options}


def with_caches(denylist: dict[str, Any], counters: dict[str, Any]) -> Any:
    """``override_settings`` with the denylist's and the counters' caches."""
    default = cache(LOCMEM, f"default-{uuid.uuid4().hex}")
    return override_settings(
        CACHES={"default": default, "denylist": denylist, "ratelimit": counters}
    )


def problems(**settings: Any) -> list[str]:
    return sorted(check_problems(run_checks({**DENYLIST, **settings})))


# -- W007: one store, however many aliases -------------------------------------------------------


SHARED = [
    pytest.param(
        cache(REDIS, "cache:6379"), cache(REDIS, "cache:6379"), id="redis-no-scheme-as-written"
    ),
    pytest.param(
        cache(REDIS, "redis://cache:port/0"),
        cache(REDIS, "redis://cache:port/0", KEY_PREFIX="counters"),
        id="redis-unreadable-port-as-written",
    ),
    pytest.param(
        cache(REDIS, "redis://cache:6379/0"), cache(REDIS, "redis://cache:6379/1"), id="redis-db"
    ),
    pytest.param(
        cache(REDIS, "redis://cache/0"),
        cache(REDIS, "redis://cache:6379/0", KEY_PREFIX="counters"),
        id="redis-key-prefix-default-port",
    ),
    pytest.param(
        cache(REDIS, "redis://localhost:6379/0"),
        cache(REDIS, "redis://127.0.0.1:6379/2"),
        id="redis-localhost-is-loopback",
    ),
    pytest.param(
        cache(REDIS, "redis://[::1]:6380"),
        cache(REDIS, "redis://127.0.0.1:6380/3"),
        id="redis-ipv6-loopback",
    ),
    pytest.param(
        cache(REDIS, "rediss://user:secret@Cache.Example.com:6380/0"),
        cache(REDIS, "rediss://cache.example.com:6380/1"),
        id="redis-tls-credentials-host-case",
    ),
    pytest.param(
        cache(REDIS, ["redis://primary:6379/0", "redis://replica:6379/0"]),
        cache(REDIS, "redis://primary:6379/1"),
        id="redis-list",
    ),
    pytest.param(
        cache(REDIS, "redis://primary:6379/0,redis://replica:6379/0"),
        cache(REDIS, "redis://replica:6379/1;redis://other:6379/1"),
        id="redis-separated-string",
    ),
    pytest.param(
        cache(DJANGO_REDIS, "redis://cache:6379/1"),
        cache(REDIS, "redis://cache:6379/2"),
        id="django-redis-and-django",
    ),
    pytest.param(
        cache(DJANGO_REDIS, ["redis://cache:6379/1"]),
        cache(DJANGO_REDIS, "redis://cache:6379/2"),
        id="django-redis",
    ),
    pytest.param(
        cache(REDIS, "unix:///run/redis/redis.sock?db=0"),
        cache(REDIS, "unix:///run/redis//redis.sock?db=1"),
        id="redis-socket",
    ),
    pytest.param(
        cache(MEMCACHED, "mc:11211"), cache(MEMCACHED, ["mc"]), id="memcached-default-port"
    ),
    pytest.param(
        cache(MEMCACHED, "unix:/tmp/memcached.sock"),
        cache(PYLIBMC, "/tmp/memcached.sock"),
        id="memcached-socket",
    ),
    pytest.param(
        cache(MEMCACHED, "[::1]:11211"), cache(MEMCACHED, "localhost"), id="memcached-ipv6-loopback"
    ),
    pytest.param(
        cache(DATABASE, "cache_table"), cache(DATABASE, "cache_table"), id="database-table"
    ),
    pytest.param(cache(FILES, "/var/tmp/cache"), cache(FILES, "/var/tmp/cache/"), id="directory"),
    pytest.param(
        cache("example.Cache", "somewhere"), cache("example.Cache", "somewhere"), id="other-backend"
    ),
]


@pytest.mark.parametrize(("denylist", "counters"), SHARED)
def test_two_aliases_on_one_store_are_a_warning(
    denylist: dict[str, Any], counters: dict[str, Any]
) -> None:
    with with_caches(denylist, counters):
        message = only_check_message(run_checks(DENYLIST), "channels_jwt.W007")
        # The rule compares stores, not aliases: both aliases must be given to the same.
        assert check_problems(run_checks({**DENYLIST, "RATE_LIMIT_CACHE": "denylist"})) == [
            "channels_jwt.W007"
        ]
    assert "RATE_LIMIT_CACHE 'ratelimit' and REVOCATION_CACHE 'denylist' both write to" in (
        message.msg
    )
    assert "database number or key prefix" in message.hint


def test_the_warning_names_the_server_both_write_to() -> None:
    with with_caches(cache(REDIS, "redis://127.0.0.1:6379/0"), cache(REDIS, "redis://localhost/5")):
        message = only_check_message(run_checks(DENYLIST), "channels_jwt.W007")
    assert message.msg.startswith(
        "CHANNELS_JWT RATE_LIMIT_CACHE 'ratelimit' and REVOCATION_CACHE 'denylist' both write to "
        "the Redis server localhost:6379: "
    )
    assert "noeviction" in message.hint


SEPARATE = [
    pytest.param(
        cache(REDIS, "redis://cache:6379/0"), cache(REDIS, "redis://cache:6380/0"), id="redis-port"
    ),
    pytest.param(
        cache(REDIS, "redis://denylist:6379/0"),
        cache(REDIS, "redis://cache:6379/0"),
        id="redis-host",
    ),
    pytest.param(
        cache(REDIS, "unix:///run/denylist.sock"),
        cache(REDIS, "unix:///run/cache.sock"),
        id="redis-socket",
    ),
    pytest.param(
        cache(REDIS, "redis://denylist:6379/0"),
        cache(DJANGO_REDIS, ["redis://cache:6379/0"]),
        id="django-redis",
    ),
    pytest.param(
        cache(MEMCACHED, "mc-a:11211"), cache(MEMCACHED, "mc-a:11212"), id="memcached-port"
    ),
    pytest.param(cache(DATABASE, "denylist"), cache(DATABASE, "cache_table"), id="database-tables"),
    pytest.param(
        cache(FILES, "/var/tmp/denylist"), cache(FILES, "/var/tmp/cache"), id="directories"
    ),
    pytest.param(
        cache(REDIS, "redis://cache:6379/0"),
        cache(DATABASE, "redis://cache:6379/0"),
        id="other-backends",
    ),
    pytest.param(
        cache("example.Cache", "a"), cache("example.Cache", "b"), id="other-backend-locations"
    ),
    pytest.param(
        # A port that is not a number: each URL is compared as written.
        cache(REDIS, "redis://cache:port/0"),
        cache(REDIS, "redis://cache:port/1"),
        id="redis-unreadable-port",
    ),
]


@pytest.mark.parametrize(("denylist", "counters"), SEPARATE)
def test_two_stores_are_fine(denylist: dict[str, Any], counters: dict[str, Any]) -> None:
    with with_caches(denylist, counters):
        assert problems() == []


def test_two_local_memory_aliases_are_one_store_when_their_location_is() -> None:
    # Django keeps one dict per LOCATION (the default is ""), culled at the MAX_ENTRIES of
    # whichever alias writes. The denylist in local memory is W006 in any case.
    with with_caches(cache(LOCMEM), cache(LOCMEM, "")):
        assert problems() == ["channels_jwt.W006", "channels_jwt.W007"]
    with with_caches(cache(LOCMEM, "denylist"), cache(LOCMEM, "counters")):
        assert problems() == ["channels_jwt.W006"]


def test_no_counters_or_no_denylist_share_nothing() -> None:
    with with_caches(cache(REDIS, "redis://cache/0"), cache(REDIS, "redis://cache/1")):
        assert problems(RATE_LIMIT=None) == []
        assert problems(REVOCATION_CHECK=None) == []


def test_a_dummy_cache_keeps_nothing_to_evict_and_is_its_own_warning() -> None:
    with with_caches(cache(DUMMY), cache(DUMMY)):
        messages = run_checks({**DENYLIST, "RATE_LIMIT_CACHE": "denylist"})
    assert check_problems(messages) == ["channels_jwt.W008", "channels_jwt.W008"]
    assert [message.msg for message in messages] == [
        "CHANNELS_JWT REVOCATION_CACHE 'denylist' is a dummy cache: it keeps nothing, so "
        "revoke_token revokes nothing.",
        "CHANNELS_JWT RATE_LIMIT_CACHE 'denylist' is a dummy cache: it keeps nothing, so nothing "
        "is limited.",
    ]


# -- the hazards, for real ----------------------------------------------------------------------


async def handshake(app: Any, token: str | None, address: str) -> Any:
    """A handshake from ``address`` offering ``token``: ``ACCEPTED``, or the close message."""
    offered = [] if token is None else [MARKER, token]
    communicator = ApplicationCommunicator(
        app, websocket_scope(subprotocols=offered, client=(address, 50000))
    )
    await communicator.send_input({"type": "websocket.connect"})
    outcome = await communicator.receive_output(TIMEOUT)
    if outcome["type"] == "websocket.accept":
        outcome = await communicator.receive_output(TIMEOUT)
    if outcome["type"] == "websocket.send":
        outcome = ACCEPTED
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(TIMEOUT)
    return outcome


class GreetingApp:
    """Accepts and greets, so an accepted handshake is told from a refused one."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": MARKER})
        await send({"type": "websocket.send", "text": "welcome"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


async def flood_until_gone(app: Any, key: str) -> int:
    """Handshakes without a token from new addresses until ``key`` leaves the denylist.

    How many it took (``FLOOD + 1``: it never did).
    """
    for start in range(0, FLOOD, BATCH):
        batch = [handshake(app, None, f"2001:db8::{n:x}") for n in range(start, start + BATCH)]
        assert await asyncio.gather(*batch) == [MISSING] * BATCH
        if not caches["denylist"].has_key(key):
            return start + BATCH
    return FLOOD + 1


@contextmanager
def project(denylist: dict[str, Any], counters: dict[str, Any]) -> Iterator[None]:
    with with_caches(denylist, counters), override_settings(CHANNELS_JWT=DENYLIST):
        yield


@pytest.mark.parametrize("same", ["alias", "location"])
async def test_a_flood_culls_a_local_memory_denylist_beside_the_counters(same: str) -> None:
    # LocMemCache as Django configures it by default: MAX_ENTRIES 300, a third culled.
    location = uuid.uuid4().hex
    settings = {"RATE_LIMIT_CACHE": "denylist"} if same == "alias" else {}
    with project(cache(LOCMEM, location), cache(LOCMEM, location)):
        app = JWTAuthMiddleware(GreetingApp(), settings=settings)
        claims = claims_for(1)
        await arevoke_token(claims)

        took = await flood_until_gone(app, denylist_key(claims))

        assert took <= 300  # culled as the 300th entry came in: it was the oldest
        assert await handshake(app, hs_token(claims), "2001:db8:1::1") == ACCEPTED
        assert problems(**settings) == ["channels_jwt.W006", "channels_jwt.W007"]


async def test_a_flood_leaves_a_denylist_with_a_store_of_its_own() -> None:
    with project(cache(LOCMEM, uuid.uuid4().hex), cache(LOCMEM, uuid.uuid4().hex)):
        app = JWTAuthMiddleware(GreetingApp())
        claims = claims_for(1)
        await arevoke_token(claims)

        took = await flood_until_gone(app, denylist_key(claims))

        assert took == FLOOD + 1
        assert await handshake(app, hs_token(claims), "2001:db8:1::1") == REVOKED
        assert problems() == ["channels_jwt.W006"]  # still per process


async def test_a_dummy_cache_forgets_revocations_and_failures() -> None:
    with project(cache(DUMMY), cache(DUMMY)):
        app = JWTAuthMiddleware(GreetingApp(), settings={"RATE_LIMIT": "1/min"})
        claims = claims_for(1)
        await arevoke_token(claims)

        failures = [await handshake(app, None, "2001:db8::1") for _ in range(3)]

        assert failures == [MISSING] * 3  # a cache that counted would say 4429 from the 2nd
        assert await handshake(app, hs_token(claims), "2001:db8::1") == ACCEPTED
        assert problems() == ["channels_jwt.W008", "channels_jwt.W008"]
