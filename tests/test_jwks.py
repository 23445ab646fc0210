"""Keys from a JWKS endpoint (``JWK_URL``), against a real HTTP server on 127.0.0.1.

Through the middleware where the behaviour is what a client sees (close codes, latency,
requests the identity provider receives), and directly through :class:`JWKSKeys` where a
refetch cooldown shorter than 30 s is needed (``cooldown=``; the middleware always uses
:data:`REFETCH_COOLDOWN_SECONDS`, so the middleware tests that need it shorter set the public
``cooldown`` attribute of the middleware's own ``JWKSKeys``, see :func:`jwks_of`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import warnings
from datetime import timedelta
from typing import Any

import jwt
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from jwt.warnings import InsecureKeyLengthWarning

from channels_jwt import JWTAuthMiddleware
from channels_jwt.checks import check_settings
from channels_jwt.conf import Settings
from channels_jwt.config import config_of
from channels_jwt.exceptions import KeyUnavailable
from channels_jwt.jwks import (
    REFETCH_COOLDOWN_SECONDS,
    JWKSKeys,
    is_allowed_jwks_url,
    usable_keys,
)
from channels_jwt.users import TokenUser
from channels_jwt.verify import TokenVerifier
from tests.harness import LOGGER, Keys, RecordingApp, hs_token, public_pem, warnings_of
from tests.jwks_server import (
    JWKS_PATH,
    OUTAGES,
    JWKSServer,
    der,
    eventually,
    handshake,
    idp_app,
    idp_claims,
    idp_settings,
    idp_token,
    jwk_dict,
    jwks_of,
    keys_for,
    outage,
    public_jwk,
    recover,
    running_jwks_server,
    wait_for_requests,
)

#: A handshake that needs no network must finish well within this (seconds).
FAST = 0.5


# Fetching and caching.


async def test_first_handshake_fetches_then_snapshot_serves(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    inner = RecordingApp()
    app = idp_app(jwks_server.url, inner)

    outcomes = [await handshake(app, idp_token(keys.rsa, "key-1")) for _ in range(5)]

    assert [outcome.code for outcome in outcomes] == [None] * 5
    assert jwks_server.request_paths == [JWKS_PATH]
    user = inner.scopes[0]["user"]
    assert isinstance(user, TokenUser)
    assert user.pk == "alice"
    assert inner.scopes[0]["jwt"].claims["iss"] == "https://idp.example.com/"


def test_middleware_jwks_uses_settings_and_a_30_second_cooldown() -> None:
    app = idp_app(
        "https://idp.example.com/jwks",
        JWKS_CACHE_SECONDS=timedelta(minutes=10),
        JWKS_TIMEOUT_SECONDS=2,
    )

    jwks = jwks_of(app)

    assert (jwks.url, jwks.cache_seconds, jwks.cooldown) == (
        "https://idp.example.com/jwks",
        600,
        30,
    )
    assert REFETCH_COOLDOWN_SECONDS == 30


# Rotation.


async def test_new_kid_triggers_one_refetch_and_is_accepted(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "old"))
    app = idp_app(jwks_server.url)
    assert (await handshake(app, idp_token(keys.rsa, "old"))).accepted
    jwks_of(app).cooldown = 0  # the last fetch was "long enough" ago
    jwks_server.publish(public_jwk(keys.rsa, "old"), public_jwk(keys.rsa_other, "new"))

    first = await handshake(app, idp_token(keys.rsa_other, "new"))
    requests_after_first = jwks_server.requests
    again = await handshake(app, idp_token(keys.rsa_other, "new"))
    old = await handshake(app, idp_token(keys.rsa, "old"))

    assert (first.code, again.code, old.code) == (None, None, None)
    assert requests_after_first == 2
    assert jwks_server.requests == 2


async def test_key_removed_from_the_set_is_refused_after_a_refetch(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "old"))
    app = idp_app(jwks_server.url)
    assert (await handshake(app, idp_token(keys.rsa, "old"))).accepted
    jwks_server.publish(public_jwk(keys.rsa_other, "new"))

    still_published_in_snapshot = await handshake(app, idp_token(keys.rsa, "old"))
    jwks_of(app).cooldown = 0
    new = await handshake(app, idp_token(keys.rsa_other, "new"))  # refetch: "old" is gone
    jwks_of(app).cooldown = 30
    old = await handshake(app, idp_token(keys.rsa, "old"))

    assert still_published_in_snapshot.accepted
    assert new.accepted
    assert (old.code, old.reason) == (4401, "token_invalid")
    assert jwks_server.requests == 2


# Unknown-kid floods.


async def test_unknown_kid_flood_costs_one_fetch_per_cooldown(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.p256, "known"))
    inner = RecordingApp()
    app = idp_app(jwks_server.url, inner)
    assert (await handshake(app, idp_token(keys.p256, "known", alg="ES256"))).accepted
    jwks_of(app).cooldown = 0.5
    await asyncio.sleep(0.5)
    tokens = [idp_token(keys.p256, secrets.token_hex(8), alg="ES256") for _ in range(200)]

    concurrent = await asyncio.gather(*(handshake(app, token, timeout=10) for token in tokens))
    sequential = [await handshake(app, token) for token in tokens[:100]]

    outcomes = concurrent + sequential
    assert {(outcome.code, outcome.reason) for outcome in outcomes} == {(4401, "token_invalid")}
    assert jwks_server.requests == 2
    assert len(inner.scopes) == 1


async def test_cold_unknown_kid_flood_costs_at_most_one_extra_fetch(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.p256, "known"))
    app = idp_app(jwks_server.url)  # the real 30 s cooldown
    tokens = [idp_token(keys.p256, secrets.token_hex(8), alg="ES256") for _ in range(200)]

    concurrent = await asyncio.gather(*(handshake(app, token, timeout=10) for token in tokens))
    requests_after_concurrent = jwks_server.requests
    sequential = [await handshake(app, token) for token in tokens]

    outcomes = concurrent + sequential
    assert {(outcome.code, outcome.reason) for outcome in outcomes} == {(4401, "token_invalid")}
    assert 1 <= requests_after_concurrent <= 2
    assert jwks_server.requests == requests_after_concurrent


# A slow endpoint.


async def test_slow_fetch_of_a_new_kid_delays_no_other_handshake(
    jwks_server: JWKSServer, keys: Keys, transactional_db: None
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "known"))
    app = idp_app(jwks_server.url)
    hs_app = JWTAuthMiddleware(
        RecordingApp(), settings={**idp_settings(None), "ALGORITHMS": ["HS256"]}
    )
    known = idp_token(keys.rsa, "known")
    hs = hs_token(idp_claims())
    count_users = database_sync_to_async(get_user_model().objects.count)
    assert (await handshake(app, known)).accepted
    assert (await handshake(hs_app, hs)).accepted
    jwks_of(app).cooldown = 0
    jwks_server.publish(public_jwk(keys.rsa, "known"), public_jwk(keys.rsa_other, "new"))
    jwks_server.delay = 2.0

    slow = asyncio.create_task(handshake(app, idp_token(keys.rsa_other, "new"), timeout=10))
    assert await wait_for_requests(jwks_server, 2) == 2
    known_kid = [(await handshake(app, known)) for _ in range(20)]
    other_middleware = [(await handshake(hs_app, hs)) for _ in range(20)]
    database: list[float] = []
    for _ in range(20):
        started = time.monotonic()
        await count_users()
        database.append(time.monotonic() - started)
    fetch_still_running = not slow.done()
    new_kid = await slow

    print(
        "\nslow JWKS (2.0 s) in flight; latencies in ms, max/median over 20 each:"
        f"\n  RS256 known kid, same middleware: {figures(o.seconds for o in known_kid)}"
        f"\n  HS256, another middleware:       {figures(o.seconds for o in other_middleware)}"
        f"\n  database_sync_to_async(count):   {figures(database)}"
        f"\n  the handshake with the new kid:  {new_kid.seconds * 1000:.0f} ms"
        f"\n  JWKS requests received: {jwks_server.requests}"
    )
    assert fetch_still_running
    assert all(outcome.accepted for outcome in known_kid + other_middleware)
    assert max(outcome.seconds for outcome in known_kid + other_middleware) < FAST
    assert max(database) < FAST
    assert new_kid.accepted
    assert 1.9 < new_kid.seconds < 3.5
    assert jwks_server.requests == 2


def figures(seconds: Any) -> str:
    values = sorted(value * 1000 for value in seconds)
    return f"max {values[-1]:6.1f}, median {values[len(values) // 2]:6.1f}"


@pytest.mark.parametrize("state", ["cold", "new-kid"])
async def test_handshakes_arriving_during_a_fetch_wait_for_it(
    jwks_server: JWKSServer, keys: Keys, state: str
) -> None:
    """A second handshake for the key being fetched waits for that fetch, not another one.

    (Nor is it refused because the fetch already under way started the cooldown.)
    """
    jwks_server.publish(public_jwk(keys.rsa, "known"), public_jwk(keys.rsa_other, "new"))
    app = idp_app(jwks_server.url)
    kid, key, expected_requests = "known", keys.rsa, 1
    if state == "new-kid":
        jwks_server.publish(public_jwk(keys.rsa, "known"))
        assert (await handshake(app, idp_token(keys.rsa, "known"))).accepted
        jwks_of(app).cooldown = 0.3
        await asyncio.sleep(0.3)
        jwks_server.publish(public_jwk(keys.rsa, "known"), public_jwk(keys.rsa_other, "new"))
        kid, key, expected_requests = "new", keys.rsa_other, 2
    jwks_server.delay = 1.0

    first = asyncio.create_task(handshake(app, idp_token(key, kid), timeout=10))
    assert await wait_for_requests(jwks_server, expected_requests) == expected_requests
    await asyncio.sleep(0.1)
    second = await handshake(app, idp_token(key, kid), timeout=10)
    first_outcome = await first

    assert (first_outcome.code, second.code) == (None, None)
    assert second.seconds < 1.0
    assert jwks_server.requests == expected_requests


# JWKS_CACHE_SECONDS.


async def test_stale_snapshot_serves_at_once_and_refreshes_in_background(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "old"))
    app = idp_app(jwks_server.url, JWKS_CACHE_SECONDS=0.3)
    old = idp_token(keys.rsa, "old")
    assert (await handshake(app, old)).accepted
    jwks_server.publish(public_jwk(keys.rsa_other, "new"))
    jwks_server.delay = 0.5
    await asyncio.sleep(0.35)

    stale = await handshake(app, old)
    during_refresh = await handshake(app, old)

    async def old_refused() -> bool:
        return (await handshake(app, old)).code == 4401

    assert stale.accepted
    assert stale.seconds < 0.3
    assert during_refresh.accepted
    assert await eventually(old_refused)
    assert (await handshake(app, idp_token(keys.rsa_other, "new"))).accepted
    assert jwks_server.requests == 2


async def test_stale_snapshot_and_unknown_kid_share_one_fetch(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "old"))
    jwks = JWKSKeys(jwks_server.url, cache_seconds=0.2, timeout=5, cooldown=0.2)
    assert await jwks.candidates("RS256", "old")
    jwks_server.publish(public_jwk(keys.rsa, "old"), public_jwk(keys.rsa_other, "new"))
    await asyncio.sleep(0.25)

    found = await jwks.candidates("RS256", "new")

    assert [der(key) for key in found] == keys_for([keys.rsa_other])
    assert jwks_server.requests == 2


# The endpoint is down.


@pytest.mark.parametrize("mode", OUTAGES)
async def test_cached_keys_keep_working_while_endpoint_down(
    jwks_server: JWKSServer, keys: Keys, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.publish(public_jwk(keys.ed25519, "ed"))
    app = idp_app(jwks_server.url, JWKS_CACHE_SECONDS=0.2)
    token = idp_token(keys.ed25519, "ed", alg="EdDSA")
    assert (await handshake(app, token)).accepted
    outage(jwks_server, mode)
    await asyncio.sleep(0.25)
    caplog.set_level(logging.WARNING, LOGGER)

    outcomes = [await handshake(app, token) for _ in range(3)]

    async def refresh_failed() -> bool:
        return any("failed" in line for line in warnings_of(caplog))

    assert [outcome.code for outcome in outcomes] == [None, None, None]
    assert max(outcome.seconds for outcome in outcomes) < FAST
    assert await eventually(refresh_failed)
    assert f"JWKS fetch from {jwks_server.url} failed: " in warnings_of(caplog)[0]


@pytest.mark.parametrize("mode", OUTAGES)
async def test_nothing_cached_and_endpoint_down_closes_with_4503(
    jwks_server: JWKSServer, keys: Keys, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    outage(jwks_server, mode)
    app = idp_app(jwks_server.url)
    token = idp_token(keys.rsa, "key-1")
    caplog.set_level(logging.INFO, LOGGER)

    outcome = await handshake(app, token)

    assert (outcome.code, outcome.reason) == (4503, "auth_unavailable")
    error = "PyJWKClientConnectionError" if mode in ("stopped", "http-500") else "PyJWKClientError"
    assert warnings_of(caplog) == [
        f"JWKS fetch from {jwks_server.url} failed: {error}",
        "WebSocket authentication unavailable: "
        f"JWKS at {jwks_server.url} unavailable and no key known for the token",
    ]
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert token.split(".")[2] not in logged
    assert token.split(".")[1] not in logged


@pytest.mark.parametrize("mode", OUTAGES)
async def test_handshakes_recover_when_endpoint_returns(
    jwks_server: JWKSServer, keys: Keys, mode: str
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    outage(jwks_server, mode)
    app = idp_app(jwks_server.url)
    token = idp_token(keys.rsa, "key-1")
    down = await handshake(app, token)
    jwks_of(app).retry_after_failure = 0.2
    still_down = await handshake(app, token)  # within the retry interval: no new attempt
    requests_while_backing_off = jwks_server.requests
    recover(jwks_server, mode)
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    await asyncio.sleep(0.25)

    back = await handshake(app, token)

    assert (down.code, still_down.code) == (4503, 4503)
    assert jwks_server.requests > requests_while_backing_off
    assert back.accepted


async def test_failed_fetch_is_not_retried_before_the_retry_interval(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.status = 500
    jwks = JWKSKeys(jwks_server.url, cache_seconds=300, timeout=5, retry_after_failure=30)
    for _ in range(20):
        with pytest.raises(KeyUnavailable):
            await jwks.candidates("RS256", "key-1")
    assert jwks_server.requests == 1


async def test_unknown_kid_while_endpoint_down_is_unavailable_then_recovers(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "old"))
    jwks = JWKSKeys(
        jwks_server.url, cache_seconds=300, timeout=5, cooldown=0.2, retry_after_failure=0.2
    )
    assert await jwks.candidates("RS256", "old")
    jwks_server.status = 500
    await asyncio.sleep(0.2)

    with pytest.raises(KeyUnavailable, match="unavailable and no key known"):
        await jwks.candidates("RS256", "new")
    requests_after_failure = jwks_server.requests
    known = await jwks.candidates("RS256", "old")
    with pytest.raises(KeyUnavailable):
        await jwks.candidates("RS256", "new")  # within the cooldown: no new attempt
    requests_within_cooldown = jwks_server.requests
    jwks_server.status = 200
    jwks_server.publish(public_jwk(keys.rsa, "old"), public_jwk(keys.rsa_other, "new"))
    await asyncio.sleep(0.2)
    recovered = await jwks.candidates("RS256", "new")

    assert requests_after_failure == 2
    assert [der(key) for key in known] == keys_for([keys.rsa])
    assert requests_within_cooldown == 2
    assert [der(key) for key in recovered] == keys_for([keys.rsa_other])
    assert jwks_server.requests == 3


async def test_unknown_kid_after_a_successful_fetch_is_invalid_not_unavailable(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "old"))
    jwks = JWKSKeys(jwks_server.url, cache_seconds=300, timeout=5, cooldown=0)

    found = await jwks.candidates("RS256", "never-published")

    assert found == []
    assert jwks_server.requests == 1  # the first fetch is as fresh as a refetch


async def test_hanging_endpoint_times_out_with_4503(
    jwks_server: JWKSServer, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    jwks_server.delay = 10
    app = idp_app(jwks_server.url, JWKS_TIMEOUT_SECONDS=1)
    caplog.set_level(logging.WARNING, LOGGER)

    outcome = await handshake(app, idp_token(keys.rsa, "key-1"), timeout=10)

    print(f"\nhanging JWKS, JWKS_TIMEOUT_SECONDS=1: 4503 after {outcome.seconds * 1000:.0f} ms")
    assert (outcome.code, outcome.reason) == (4503, "auth_unavailable")
    assert 0.9 < outcome.seconds < 2.0
    assert warnings_of(caplog)[0] == (
        f"JWKS fetch from {jwks_server.url} failed: PyJWKClientConnectionError"
    )


# Where keys may come from.


async def test_redirects_are_not_followed(jwks_server: JWKSServer, keys: Keys) -> None:
    with running_jwks_server() as elsewhere:
        elsewhere.publish(public_jwk(keys.rsa, "key-1"))
        jwks_server.redirect_to = elsewhere.url
        app = idp_app(jwks_server.url)

        outcome = await handshake(app, idp_token(keys.rsa, "key-1"))

        assert (outcome.code, outcome.reason) == (4503, "auth_unavailable")
        assert jwks_server.requests == 1
        assert elsewhere.requests == 0


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        pytest.param("https://idp.example.com/.well-known/jwks.json", True, id="https"),
        pytest.param("HTTPS://idp.example.com/jwks", True, id="https-uppercase-scheme"),
        pytest.param("http://127.0.0.1:8080/jwks", True, id="http-ipv4-loopback"),
        pytest.param("http://127.9.9.9/jwks", True, id="http-loopback-net"),
        pytest.param("http://[::1]:8080/jwks", True, id="http-ipv6-loopback"),
        pytest.param("http://localhost/jwks", True, id="http-localhost"),
        pytest.param("http://idp.example.com/jwks", False, id="http-remote-host"),
        pytest.param("http://localhost.example.com/jwks", False, id="http-localhost-lookalike"),
        pytest.param("http://10.0.0.1/jwks", False, id="http-private-address"),
        pytest.param("http://0.0.0.0/jwks", False, id="http-unspecified-address"),
        pytest.param("ftp://localhost/jwks", False, id="ftp"),
        pytest.param("file:///etc/jwks.json", False, id="file"),
        pytest.param("https:///jwks", False, id="no-host"),
        pytest.param("http://[::1/jwks", False, id="unparsable"),
        pytest.param("", False, id="empty"),
        pytest.param(None, False, id="none"),
        pytest.param(b"https://idp.example.com/jwks", False, id="bytes"),
    ],
)
def test_is_allowed_jwks_url(url: Any, allowed: bool) -> None:
    assert is_allowed_jwks_url(url) is allowed


def message_ids(overrides: dict[str, Any]) -> list[str]:
    return [message.id for message in check_settings(Settings(overrides)) if message.id]


def test_jwks_settings_pass_the_checks() -> None:
    assert message_ids(idp_settings("https://idp.example.com/jwks")) == []


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://idp.example.com/jwks", id="http-remote-host"),
        pytest.param("ftp://localhost/jwks", id="ftp"),
        pytest.param("https:///jwks", id="no-host"),
    ],
)
def test_check_e029_jwk_url_not_https(url: str) -> None:
    assert message_ids(idp_settings(url)) == ["channels_jwt.E029"]


@pytest.mark.parametrize(
    ("timeout", "ids"),
    [
        pytest.param(5, [], id="5"),
        pytest.param(0.5, [], id="half-a-second"),
        pytest.param(30, [], id="30"),
        pytest.param(timedelta(seconds=2), [], id="timedelta"),
        pytest.param(0, ["channels_jwt.E030"], id="zero"),
        pytest.param(-1, ["channels_jwt.E030"], id="negative"),
        pytest.param(31, ["channels_jwt.E030"], id="over-30"),
        pytest.param(timedelta(minutes=1), ["channels_jwt.E030"], id="timedelta-too-long"),
        pytest.param("5", ["channels_jwt.E030"], id="string"),
        pytest.param(True, ["channels_jwt.E030"], id="bool"),
        pytest.param(None, ["channels_jwt.E030"], id="none"),
    ],
)
def test_check_e030_jwks_timeout(timeout: Any, ids: list[str]) -> None:
    overrides = idp_settings("https://idp.example.com/jwks", JWKS_TIMEOUT_SECONDS=timeout)
    assert message_ids(overrides) == ids


def test_check_e031_jwk_url_with_hmac_algorithms() -> None:
    overrides = idp_settings("https://idp.example.com/jwks", ALGORITHMS=["HS256"])
    assert message_ids(overrides) == ["channels_jwt.E031"]


def test_check_w004_verifying_key_ignored_with_jwk_url(keys: Keys) -> None:
    overrides = idp_settings("https://idp.example.com/jwks", VERIFYING_KEY=public_pem(keys.rsa))
    assert message_ids(overrides) == ["channels_jwt.W004"]


async def test_middleware_with_plain_http_jwk_url_closes_misconfigured(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    app = idp_app("http://idp.example.com/jwks")
    caplog.set_level(logging.ERROR, LOGGER)

    outcome = await handshake(app, idp_token(keys.rsa, "key-1"))

    assert (outcome.code, outcome.reason) == (4503, "auth_unavailable")
    assert [record.getMessage() for record in caplog.records if record.name == LOGGER] == [
        "channels_jwt is misconfigured: channels_jwt.E029: "
        "CHANNELS_JWT JWK_URL must be an https URL (http only to a loopback host)."
    ]


# Which keys of a set are used.


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def skipped_entries(keys: Keys) -> dict[str, Any]:
    rsa_jwk = public_jwk(keys.rsa, "k")
    return {
        "use-enc": jwk_dict(keys.rsa.public_key(), "k", use="enc"),
        "key-ops-encrypt": {**rsa_jwk, "key_ops": ["encrypt"]},
        "key-ops-empty": {**rsa_jwk, "key_ops": []},
        "key-ops-not-a-list": {**rsa_jwk, "key_ops": "verify"},
        "key-ops-null": {**rsa_jwk, "key_ops": None},
        "oct": {"kty": "oct", "kid": "k", "k": b64url(b"s" * 64)},
        "oct-holding-a-pem": {"kty": "oct", "kid": "k", "k": b64url(public_pem(keys.rsa).encode())},
        "private-rsa": jwk_dict(keys.rsa, "k"),
        "private-ec": jwk_dict(keys.p256, "k"),
        "private-okp": jwk_dict(keys.ed25519, "k"),
        "rsa-1024": public_jwk(keys.rsa_small, "k"),
        "alg-of-another-family": {**rsa_jwk, "alg": "ES256"},
        "alg-hmac": {**rsa_jwk, "alg": "HS256"},
        "alg-none": {**rsa_jwk, "alg": "none"},
        "kty-unknown": {**rsa_jwk, "kty": "XYZ"},
        "kty-not-a-string": {**rsa_jwk, "kty": ["RSA"]},
        "n-not-base64url": {**rsa_jwk, "n": "!!!"},
        "n-not-a-string": {**rsa_jwk, "n": 5},
        "ec-curve-unknown": {**public_jwk(keys.p256, "k"), "crv": "P-999"},
        "okp-missing-x": {"kty": "OKP", "crv": "Ed25519", "kid": "k"},
        "empty-object": {},
        "not-an-object": "RSA",
        "null": None,
    }


SKIPPED = [
    "use-enc",
    "key-ops-encrypt",
    "key-ops-empty",
    "key-ops-not-a-list",
    "key-ops-null",
    "oct",
    "oct-holding-a-pem",
    "private-rsa",
    "private-ec",
    "private-okp",
    "rsa-1024",
    "alg-of-another-family",
    "alg-hmac",
    "alg-none",
    "kty-unknown",
    "kty-not-a-string",
    "n-not-base64url",
    "n-not-a-string",
    "ec-curve-unknown",
    "okp-missing-x",
    "empty-object",
    "not-an-object",
    "null",
]


@pytest.mark.parametrize("entry", SKIPPED)
def test_usable_keys_skips_entry_and_keeps_the_rest(keys: Keys, entry: str) -> None:
    good = public_jwk(keys.p256, "good")

    usable = usable_keys({"keys": [skipped_entries(keys)[entry], good]})

    assert [(jwk.kid, der(jwk.key), jwk.algorithm) for jwk in usable] == [
        ("good", der(keys.p256.public_key()), None)
    ]


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"keys": {"kid": "k"}}, id="keys-an-object"),
        pytest.param({"keys": "RSA"}, id="keys-a-string"),
        pytest.param({"keys": None}, id="keys-null"),
        pytest.param({}, id="no-keys"),
        pytest.param([], id="a-list"),
        pytest.param("keys", id="a-string"),
        pytest.param(None, id="null"),
    ],
)
def test_usable_keys_of_a_document_without_a_key_list(document: Any) -> None:
    assert usable_keys(document) == ()


def test_usable_keys_keeps_signing_keys_with_their_kid_and_alg(keys: Keys) -> None:
    document = {
        "keys": [
            public_jwk(keys.rsa, "rsa", alg="RS256"),
            {**public_jwk(keys.p256, "p256"), "use": "sig"},
            {key: value for key, value in public_jwk(keys.ed25519, "ed").items() if key != "use"},
            # A kid that is not a string names nothing; a falsy alg is no alg (as PyJWK reads it).
            {**public_jwk(keys.rsa_other, None), "kid": 7, "alg": 0},
        ]
    }

    usable = usable_keys(document)

    assert [(jwk.kid, jwk.algorithm) for jwk in usable] == [
        ("rsa", "RS256"),
        ("p256", None),
        ("ed", None),
        (None, None),
    ]
    assert [der(jwk.key) for jwk in usable] == keys_for(
        [keys.rsa, keys.p256, keys.ed25519, keys.rsa_other]
    )


async def test_a_garbage_entry_does_not_take_the_set_down(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    rsa_jwk = public_jwk(keys.rsa, "garbage")
    jwks_server.publish({**rsa_jwk, "alg": "none"}, public_jwk(keys.p256, "good"))
    app = idp_app(jwks_server.url)

    outcome = await handshake(app, idp_token(keys.p256, "good", alg="ES256"))

    assert outcome.accepted


@pytest.mark.parametrize(
    ("jwk_alg", "token_alg", "code"),
    [
        pytest.param("RS256", "RS256", None, id="alg-RS256-token-RS256"),
        pytest.param("RS256", "PS256", 4401, id="alg-RS256-token-PS256"),
        pytest.param("PS256", "RS256", 4401, id="alg-PS256-token-RS256"),
        pytest.param(None, "RS256", None, id="no-alg-token-RS256"),
        pytest.param(None, "PS256", None, id="no-alg-token-PS256"),
    ],
)
async def test_jwk_alg_binds_the_key_to_one_algorithm(
    jwks_server: JWKSServer, keys: Keys, jwk_alg: str | None, token_alg: str, code: int | None
) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "rsa", alg=jwk_alg))
    app = idp_app(jwks_server.url)

    outcome = await handshake(app, idp_token(keys.rsa, "rsa", alg=token_alg))

    assert outcome.code == code


@pytest.mark.parametrize(
    ("key_ops", "code"),
    [
        pytest.param(["encrypt"], 4401, id="encrypt"),
        pytest.param(["sign", "verify"], None, id="sign-verify"),
    ],
)
async def test_jwk_key_ops_must_include_verify(
    jwks_server: JWKSServer, keys: Keys, key_ops: list[str], code: int | None
) -> None:
    """RFC 7517 section 4.3: an encryption key never verifies, even without ``use``."""
    jwks_server.publish({**jwk_dict(keys.rsa.public_key(), "rsa", use=None), "key_ops": key_ops})
    app = idp_app(jwks_server.url)

    outcome = await handshake(app, idp_token(keys.rsa, "rsa"))

    assert (outcome.code, outcome.reason) == (code, "token_invalid" if code else "")


async def test_token_without_kid_is_tried_against_every_fitting_key(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(
        public_jwk(keys.rsa, "a"),
        public_jwk(keys.rsa_other, "b"),
        public_jwk(keys.p256, "c"),
        public_jwk(keys.ed25519, "d"),
    )
    app = idp_app(jwks_server.url)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # a key outside the set
        forged = idp_token(keys.rsa_small, None)

    outcomes = [
        await handshake(app, idp_token(keys.rsa_other, None)),
        await handshake(app, idp_token(keys.p256, None, alg="ES256")),
        await handshake(app, forged),
    ]

    assert [outcome.code for outcome in outcomes] == [None, None, 4401]
    assert jwks_server.requests == 1


async def test_candidates_without_kid_are_the_keys_fitting_the_algorithm(
    jwks_server: JWKSServer, keys: Keys
) -> None:
    jwks_server.publish(
        public_jwk(keys.rsa, "a"),
        public_jwk(keys.p256, "b"),
        public_jwk(keys.rsa_other, "c", alg="RS256"),
        public_jwk(keys.ed25519, "d"),
    )
    jwks = JWKSKeys(jwks_server.url, cache_seconds=300, timeout=5)

    by_algorithm = {
        algorithm: [der(key) for key in await jwks.candidates(algorithm, None)]
        for algorithm in ("RS256", "PS256", "ES256", "ES384", "EdDSA")
    }

    assert by_algorithm == {
        "RS256": keys_for([keys.rsa, keys.rsa_other]),
        "PS256": keys_for([keys.rsa]),
        "ES256": keys_for([keys.p256]),
        "ES384": [],
        "EdDSA": keys_for([keys.ed25519]),
    }
    assert jwks_server.requests == 1


# The verifier.


def test_sync_verify_refuses_a_jwks_verifier(jwks_server: JWKSServer, keys: Keys) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    verifier = TokenVerifier.of(config_of(Settings(idp_settings(jwks_server.url))))

    with pytest.raises(ImproperlyConfigured, match=r"averify\(\)"):
        verifier.verify(idp_token(keys.rsa, "key-1"))
    assert jwks_server.requests == 0


async def test_averify_returns_the_verified_claims(jwks_server: JWKSServer, keys: Keys) -> None:
    jwks_server.publish(public_jwk(keys.rsa, "key-1"))
    verifier = TokenVerifier.of(config_of(Settings(idp_settings(jwks_server.url))))
    claims = idp_claims()

    verified = await verifier.averify(jwt.encode(claims, keys.rsa, "RS256", {"kid": "key-1"}))

    assert verified == claims
