"""``RATE_LIMIT``: failed handshakes counted per client address; past the count, 4429.

The limiter runs for real in the middleware, with its counts in a Django cache: a local-memory
cache with a location of its own per test (so no test sees another's counts), or a real
``RedisCache`` on a closed or silent loopback port for the outages. Addresses come from the
documentation ranges (RFC 5737, RFC 3849) except where a test is about a specific one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware, RateLimited
from channels_jwt.ratelimit import FailureLimiter, parse_rate
from channels_jwt.signals import authentication_failed
from channels_jwt.users import token_user
from tests.harness import (
    LOGGER,
    MARKER,
    always_revoked,
    crashing_resolver,
    expired_token_for,
    finding_nobody,
    token_for,
    warnings_of,
    websocket_scope,
)
from tests.processes import free_port

PATH = "/ws/limited/"
ALIAS = "ratelimit"
#: The failures allowed per address in most tests.
COUNT = 3
RATE = f"{COUNT}/min"
CLIENT = ("203.0.113.7", 50000)
OTHER_CLIENT = ("198.51.100.9", 50000)
#: Seconds any single communicator step may take.
STEP_TIMEOUT = 5.0
#: The ``AUTH_TIMEOUT_SECONDS`` of the outage tests, and the slack over it.
AUTH_TIMEOUT = 0.3
MARGIN = 1.0
ACCEPTED = "accepted"
LIMITED = "4429 rate_limited"
OTHER_KEY = "another-key-that-is-long-enough-for-hs256-0123456789"


# Parsing the setting and reading the address.


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        pytest.param("20/min", (20, 60), id="20-per-min"),
        pytest.param("1/s", (1, 1), id="1-per-s"),
        pytest.param("5/sec", (5, 1), id="sec"),
        pytest.param("5/second", (5, 1), id="second"),
        pytest.param("7/m", (7, 60), id="m"),
        pytest.param("7/minute", (7, 60), id="minute"),
        pytest.param("100/h", (100, 3600), id="h"),
        pytest.param("100/hour", (100, 3600), id="hour"),
        pytest.param("1000/d", (1000, 86400), id="d"),
        pytest.param("1000/day", (1000, 86400), id="day"),
        pytest.param("999999999/s", (999_999_999, 1), id="nine-digits"),
    ],
)
def test_parse_rate_reads_count_and_period(rate: str, parsed: tuple[int, int]) -> None:
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize(
    "rate",
    [
        pytest.param("0/min", id="zero"),
        pytest.param("-1/min", id="negative"),
        pytest.param("020/min", id="leading-zero"),
        pytest.param("1.5/s", id="fraction"),
        pytest.param("1000000000/s", id="ten-digits"),
        pytest.param("20/minutes", id="plural"),
        pytest.param("20/MIN", id="upper-case"),
        pytest.param("20 / min", id="spaces"),
        pytest.param("20/min\n", id="trailing-newline"),
        pytest.param("20/2min", id="period-multiple"),
        pytest.param("20", id="no-period"),
        pytest.param("/min", id="no-count"),
        pytest.param("", id="empty"),
        pytest.param("\uff12\uff10/min", id="full-width-digits"),
        pytest.param(20, id="int"),
        pytest.param(b"20/min", id="bytes"),
        pytest.param(None, id="none"),
    ],
)
def test_parse_rate_refuses_anything_else(rate: Any) -> None:
    assert parse_rate(rate) is None


# The limiter in the middleware, on a local-memory cache.


class GreetingApp:
    """Accepts, greets, and waits for the disconnect; counts how often it ran."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "welcome"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@pytest.fixture
def cache_alias() -> Iterator[str]:
    """A local-memory cache alias with a location no other test uses."""
    caches = {
        "default": django_settings.CACHES["default"],
        ALIAS: {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"ratelimit-{uuid.uuid4().hex}",
        },
    }
    with override_settings(CACHES=caches):
        yield ALIAS


@pytest.fixture
def inner() -> GreetingApp:
    return GreetingApp()


def limited(inner: Any, rate: str = RATE, **settings: Any) -> JWTAuthMiddleware:
    """The middleware with ``RATE_LIMIT`` on the test's cache, stateless users by default."""
    return JWTAuthMiddleware(
        inner,
        settings={
            "RATE_LIMIT": rate,
            "RATE_LIMIT_CACHE": ALIAS,
            "USER_RESOLVER": token_user,
            **settings,
        },
    )


def offering(credential: str | None) -> list[str]:
    return [] if credential is None else [MARKER, credential]


async def handshake(app: Any, credential: str | None, client: Any = CLIENT, **scope: Any) -> str:
    """Connect from ``client``: ``"accepted"``, or the close as ``"<code> <reason>"``."""
    communicator = ApplicationCommunicator(
        app, websocket_scope(PATH, subprotocols=offering(credential), client=client, **scope)
    )
    await communicator.send_input({"type": "websocket.connect"})
    message = await communicator.receive_output(STEP_TIMEOUT)
    if message["type"] == "websocket.accept":
        message = await communicator.receive_output(STEP_TIMEOUT)
        if message["type"] == "websocket.send":
            await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
            await communicator.wait(STEP_TIMEOUT)
            return ACCEPTED
    await communicator.wait(STEP_TIMEOUT)
    assert message["type"] == "websocket.close", message
    return f"{message['code']} {message['reason']}"


async def fail(app: Any, times: int, client: Any = CLIENT) -> list[str]:
    """``times`` handshakes with a wrongly signed token, one after the other."""
    return [await handshake(app, token_for(key=OTHER_KEY), client) for _ in range(times)]


async def failures_counted(alias: str, address: str) -> int:
    """How many failures the cache holds for ``address``."""
    return await FailureLimiter(alias, 1, 60).counted(address)


async def test_failures_below_the_count_keep_their_own_code(
    cache_alias: str, inner: GreetingApp
) -> None:
    outcomes = await fail(limited(inner), COUNT)

    assert outcomes == ["4401 token_invalid"] * COUNT


async def test_good_token_one_failure_short_of_the_count_is_accepted(
    cache_alias: str, inner: GreetingApp
) -> None:
    app = limited(inner)
    await fail(app, COUNT - 1)

    assert await handshake(app, token_for()) == ACCEPTED


async def test_good_token_from_an_address_past_the_count_is_refused_4429(
    cache_alias: str, inner: GreetingApp
) -> None:
    app = limited(inner)
    await fail(app, COUNT)

    assert await handshake(app, token_for()) == LIMITED
    assert inner.calls == 0


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param(None, id="no-credential"),
        pytest.param("not-a-jwt", id="malformed"),
        pytest.param("x" * 10_000, id="oversized"),
    ],
)
async def test_limited_address_is_refused_before_its_credential_is_read(
    credential: str | None, cache_alias: str, inner: GreetingApp
) -> None:
    app = limited(inner)
    await fail(app, COUNT)

    assert await handshake(app, credential) == LIMITED


#: A client-caused failure: how to provoke it, the settings it needs, and its close.
CLIENT_FAILURES = [
    pytest.param(lambda: "not-a-jwt", {}, "4400 token_malformed", id="4400"),
    pytest.param(lambda: None, {}, "4401 token_missing", id="4401-missing"),
    pytest.param(lambda: token_for(key=OTHER_KEY), {}, "4401 token_invalid", id="4401-invalid"),
    pytest.param(token_for, {"USER_RESOLVER": finding_nobody}, "4403 user_rejected", id="4403"),
    pytest.param(expired_token_for, {}, "4440 token_expired", id="4440"),
    pytest.param(token_for, {"REVOCATION_CHECK": always_revoked}, "4441 token_revoked", id="4441"),
]


@pytest.mark.parametrize(("credential", "settings", "close"), CLIENT_FAILURES)
async def test_each_client_failure_counts(
    credential: Callable[[], str | None],
    settings: dict[str, Any],
    close: str,
    cache_alias: str,
    inner: GreetingApp,
) -> None:
    failing = limited(inner, **settings)
    outcomes = [await handshake(failing, credential()) for _ in range(COUNT)]

    assert outcomes == [close] * COUNT
    assert await handshake(limited(inner), token_for()) == LIMITED


async def test_outages_do_not_count(cache_alias: str, inner: GreetingApp) -> None:
    # Two instances on the same cache and rate share the counts of an address.
    crashing = limited(inner, USER_RESOLVER=crashing_resolver)
    outcomes = [await handshake(crashing, token_for()) for _ in range(COUNT * 2)]

    assert outcomes == ["4503 auth_unavailable"] * (COUNT * 2)
    assert await failures_counted(ALIAS, CLIENT[0]) == 0
    assert await handshake(limited(inner), token_for()) == ACCEPTED


async def test_refusals_of_the_limit_do_not_count(cache_alias: str, inner: GreetingApp) -> None:
    app = limited(inner)
    await fail(app, COUNT)
    refusals = [await handshake(app, token_for(key=OTHER_KEY)) for _ in range(5)]

    assert refusals == [LIMITED] * 5
    assert await failures_counted(ALIAS, CLIENT[0]) == COUNT


async def test_accepted_connections_do_not_count(cache_alias: str, inner: GreetingApp) -> None:
    app = limited(inner)
    outcomes = [await handshake(app, token_for()) for _ in range(COUNT + 1)]

    assert outcomes == [ACCEPTED] * (COUNT + 1)
    assert await failures_counted(ALIAS, CLIENT[0]) == 0


async def test_window_ends_one_period_after_the_first_failure(
    cache_alias: str, inner: GreetingApp
) -> None:
    app = limited(inner, rate="2/s")
    first_failure = time.monotonic()
    await fail(app, 2)
    assert await handshake(app, token_for()) == LIMITED

    await asyncio.sleep(max(0.0, first_failure + 1.05 - time.monotonic()))

    assert await handshake(app, token_for()) == ACCEPTED


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param({"client": None}, id="client-none"),
        pytest.param({}, id="client-absent"),
    ],
)
async def test_connection_without_a_client_address_is_never_limited(
    scope: dict[str, Any], cache_alias: str, inner: GreetingApp
) -> None:
    app = limited(inner)
    connection_scope = websocket_scope(PATH)
    if "client" not in scope:
        del connection_scope["client"]

    async def attempt(credential: str) -> str:
        communicator = ApplicationCommunicator(
            app, {**connection_scope, **scope, "subprotocols": offering(credential)}
        )
        await communicator.send_input({"type": "websocket.connect"})
        accept = await communicator.receive_output(STEP_TIMEOUT)
        assert accept["type"] == "websocket.accept"
        message = await communicator.receive_output(STEP_TIMEOUT)
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(STEP_TIMEOUT)
        return ACCEPTED if message["type"] == "websocket.send" else str(message["code"])

    failures = [await attempt(token_for(key=OTHER_KEY)) for _ in range(COUNT * 2)]

    assert failures == ["4401"] * (COUNT * 2)
    assert await attempt(token_for()) == ACCEPTED


async def test_addresses_are_counted_apart(cache_alias: str, inner: GreetingApp) -> None:
    app = limited(inner)
    await fail(app, COUNT, CLIENT)

    assert await handshake(app, token_for(key=OTHER_KEY), OTHER_CLIENT) == "4401 token_invalid"
    assert await handshake(app, token_for(), OTHER_CLIENT) == ACCEPTED
    assert await handshake(app, token_for(), CLIENT) == LIMITED


async def test_ports_of_one_address_share_its_count(cache_alias: str, inner: GreetingApp) -> None:
    # A client cannot escape the limit by reconnecting from another source port.
    app = limited(inner)
    for port in range(40000, 40000 + COUNT):
        await handshake(app, token_for(key=OTHER_KEY), (CLIENT[0], port))

    assert await handshake(app, token_for(), (CLIENT[0], 41000)) == LIMITED


async def slow_finding_nobody(claims: Any, scope: Any) -> Any:
    await asyncio.sleep(0.2)
    return None


async def test_attempts_in_flight_count(cache_alias: str, inner: GreetingApp) -> None:
    # 60 concurrent handshakes, each failing only after a slow lookup: were the count taken
    # when each ended, all 60 would be looked up before the first failure was recorded.
    app = limited(inner, USER_RESOLVER=slow_finding_nobody)
    outcomes = await asyncio.gather(*(handshake(app, token_for()) for _ in range(60)))

    assert sorted(outcomes) == sorted(["4403 user_rejected"] * COUNT + [LIMITED] * (60 - COUNT))
    assert await failures_counted(ALIAS, CLIENT[0]) == COUNT


async def yielding_token_user(claims: Any, scope: Any) -> Any:
    await asyncio.sleep(0.05)
    return await token_user(claims, scope)


async def test_an_attempt_in_flight_is_taken_back_when_it_succeeds(
    cache_alias: str, inner: GreetingApp
) -> None:
    app = limited(inner, USER_RESOLVER=yielding_token_user)
    outcomes = await asyncio.gather(*(handshake(app, token_for()) for _ in range(COUNT)))

    assert outcomes == [ACCEPTED] * COUNT
    assert await failures_counted(ALIAS, CLIENT[0]) == 0


async def test_concurrent_failures_are_all_counted(cache_alias: str, inner: GreetingApp) -> None:
    app = limited(inner, rate="100/min")
    outcomes = await asyncio.gather(*(handshake(app, token_for(key=OTHER_KEY)) for _ in range(20)))

    assert outcomes == ["4401 token_invalid"] * 20
    assert await failures_counted(ALIAS, CLIENT[0]) == 20


# What a 4429 refusal reports.


async def test_4429_is_logged_in_one_info_line(
    cache_alias: str, inner: GreetingApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = limited(inner)
    await fail(app, COUNT)
    caplog.clear()
    caplog.set_level(logging.INFO, logger=LOGGER)
    offered = token_for()

    await handshake(app, offered)

    (record,) = [record for record in caplog.records if record.name == LOGGER]
    assert record.levelno == logging.INFO
    line = record.getMessage()
    assert line.startswith("WebSocket authentication failed: rate_limited ")
    assert line.endswith(f" code=4429 source=- path={PATH} client={CLIENT[0]}:{CLIENT[1]}")
    assert offered not in caplog.text


async def test_4429_sends_authentication_failed_without_the_credential(
    cache_alias: str, inner: GreetingApp, transactional_db: None
) -> None:
    # (transactional_db: signals are sent from channels' database thread.)
    app = limited(inner)
    await fail(app, COUNT)
    calls: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(kwargs)

    offered = token_for()
    authentication_failed.connect(receiver, weak=False, dispatch_uid="tests.ratelimit")
    try:
        await handshake(app, offered)
    finally:
        authentication_failed.disconnect(dispatch_uid="tests.ratelimit")

    (call,) = calls
    assert (call["reason"], call["close_code"], call["source"]) == ("rate_limited", 4429, None)
    assert isinstance(call["error"], RateLimited)
    assert offered not in repr(call["scope"])


async def test_deny_mode_answers_http_429_with_a_json_body(
    cache_alias: str, inner: GreetingApp
) -> None:
    app = limited(inner, REJECT_MODE="deny")
    await fail(limited(inner), COUNT)
    scope = websocket_scope(
        PATH,
        subprotocols=offering(token_for()),
        client=CLIENT,
        extensions={"websocket.http.response": {}},
    )
    communicator = ApplicationCommunicator(app, scope)

    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output(STEP_TIMEOUT)
    body = await communicator.receive_output(STEP_TIMEOUT)
    await communicator.wait(STEP_TIMEOUT)

    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 429
    headers = dict(start["headers"])
    assert b"www-authenticate" not in headers
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body["body"]) == {"code": 4429, "reason": "rate_limited"}
    assert inner.calls == 0


async def test_deny_mode_without_the_extension_closes_4429_before_accepting(
    cache_alias: str, inner: GreetingApp
) -> None:
    await fail(limited(inner), COUNT)
    communicator = ApplicationCommunicator(
        limited(inner, REJECT_MODE="deny"),
        websocket_scope(PATH, subprotocols=offering(token_for()), client=CLIENT),
    )

    await communicator.send_input({"type": "websocket.connect"})
    message = await communicator.receive_output(STEP_TIMEOUT)
    await communicator.wait(STEP_TIMEOUT)

    assert message == {"type": "websocket.close", "code": 4429, "reason": "rate_limited"}


# The cache that holds the counts fails.


@contextmanager
def redis_cache_at(port: int, **options: Any) -> Iterator[None]:
    """``ALIAS`` as a real ``RedisCache`` on ``127.0.0.1:port``."""
    caches = {
        "default": django_settings.CACHES["default"],
        ALIAS: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": options,
        },
    }
    with override_settings(CACHES=caches):
        yield


async def test_unreachable_cache_closes_4503_even_for_a_good_token(inner: GreetingApp) -> None:
    # Nothing listens on the port: every cache call is refused, as when Redis is down.
    with redis_cache_at(free_port(), socket_connect_timeout=0.5):
        outcome = await handshake(limited(inner, AUTH_TIMEOUT_SECONDS=AUTH_TIMEOUT), token_for())

    assert outcome == "4503 auth_unavailable"
    assert inner.calls == 0


async def test_unreachable_cache_logs_without_the_token(
    inner: GreetingApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    offered = token_for()
    with redis_cache_at(free_port(), socket_connect_timeout=0.5):
        await handshake(limited(inner), offered)

    assert offered not in caplog.text
    ours = [record for record in caplog.records if record.name == LOGGER]
    # An outage, like a failing revocation check: one WARNING line, no traceback.
    assert [record.getMessage() for record in ours if record.levelno >= logging.WARNING] == [
        "WebSocket authentication unavailable: rate limit cache unavailable (ConnectionError)"
    ]
    assert all(record.exc_info is None for record in ours)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung Redis)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def silent_server() -> AsyncIterator[SilentServer]:
    server = SilentServer()
    await server.start()
    yield server
    # Closing the held connections frees any thread still waiting for an answer.
    await server.close()


async def test_hanging_cache_is_bounded_by_the_auth_timeout(
    silent_server: SilentServer, inner: GreetingApp
) -> None:
    # A Redis that accepts connections but never answers, without a socket timeout (Django's
    # default OPTIONS): the docs promise that a cache that hangs cannot hold handshakes open.
    app = limited(inner, AUTH_TIMEOUT_SECONDS=AUTH_TIMEOUT)
    with redis_cache_at(silent_server.port):
        started = time.monotonic()
        outcome = await handshake(app, token_for())
        elapsed = time.monotonic() - started

    assert outcome == "4503 auth_unavailable"
    assert elapsed < AUTH_TIMEOUT + MARGIN


async def test_a_window_that_closes_between_opening_and_counting_still_counts(
    cache_alias: str,
) -> None:
    # A zero-second window expires at once, so incr() finds no key: the race between add()
    # and incr() when a window ends, made certain. The count must restart, not crash.
    limiter = FailureLimiter(cache_alias, failures=1, period=0)
    assert not await limiter.begin("198.51.100.7")
    # The window is gone too when the count is taken back: nothing to do, nothing raised.
    await limiter.forgive("198.51.100.7")


class NoTakingBackCache(LocMemCache):
    """A local-memory cache that can count but not take a count back (``decr`` fails)."""

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        raise ConnectionError("decr refused")


async def test_a_count_that_cannot_be_taken_back_keeps_the_outcome_and_warns(
    inner: GreetingApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    caches = {
        "default": django_settings.CACHES["default"],
        ALIAS: {
            "BACKEND": "tests.test_ratelimit.NoTakingBackCache",
            "LOCATION": f"ratelimit-{uuid.uuid4().hex}",
        },
    }
    with override_settings(CACHES=caches):
        outcomes = [await handshake(limited(inner), token_for()) for _ in range(COUNT + 1)]

    # Accepted, each leaving one count behind: the window ends in a minute.
    assert outcomes == [ACCEPTED] * COUNT + [LIMITED]
    assert warnings_of(caplog) == ["Could not take back a handshake's count (ConnectionError)"] * (
        COUNT + 1
    )
