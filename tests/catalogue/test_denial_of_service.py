"""D01-D07: denial of service.

Oversized tokens and the token size cap (D01, D03), a burst of bad RS256 signatures (D07), and
the JWKS side (D04-D06): a ``kid`` flood, a slow, dripping, broken or untrusted endpoint, and
garbage that must never cause a key fetch or a query.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from channels_jwt import JWTAuthMiddleware
from channels_jwt.pipeline import Pipeline
from tests.catalogue.kit import (
    ACCEPT,
    EXPIRED,
    HANDSHAKE_SECONDS,
    INVALID,
    MALFORMED,
    OVERSIZED_SECONDS,
    TRANSPORTS,
    Kit,
    assert_accepted,
    assert_refused,
    carrying,
    handshake,
    jwks_settings,
    now,
    profile_settings,
    refused_outcome,
    warm_up,
)
from tests.harness import LOGGER, RecordingApp, warnings_of
from tests.jwks_server import Certificate, JWKSServer, public_jwk, running_jwks_server
from tests.jwks_server import handshake as jwks_handshake


@pytest.mark.parametrize(
    "transport",
    [pytest.param(transport, id=f"D01-1mb-token-{transport}") for transport in TRANSPORTS],
)
async def test_D01_1mb_token_is_refused_in_under_20ms(
    transport: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    token = kit.hs(kit.claims(pad="A" * 786_000))
    assert len(token) > 1_000_000
    await assert_refused(
        carrying(token, transport),
        MALFORMED,
        settings=profile_settings("HS", kit.keys),
        caplog=caplog,
        seconds=OVERSIZED_SECONDS,
    )


def token_of_length(kit: Kit, length: int) -> str:
    """A valid HS256 token exactly ``length`` characters long (padding a claim)."""
    for kid_length in range(4):
        header = {"alg": "HS256", "kid": "k" * kid_length}
        for size in range(max(0, length * 3 // 4 - 400), length * 3 // 4):
            token = kit.hs(kit.claims(pad="A" * size), header=header)
            if len(token) == length:
                return token
            if len(token) > length:
                break
    raise AssertionError(f"no token of length {length}")


@pytest.mark.parametrize(
    ("transport", "length", "reason"),
    [
        pytest.param("subprotocol", 8192, ACCEPT, id="D03-exactly-8192-subprotocol"),
        pytest.param("subprotocol", 8193, MALFORMED, id="D03-8193-subprotocol"),
        # The query string is capped at 8 KiB including "token=": 8186 characters of token.
        pytest.param("query", 8186, ACCEPT, id="D03-exactly-8186-query"),
        pytest.param("query", 8187, MALFORMED, id="D03-8187-query"),
    ],
)
async def test_D03_token_size_cap_boundary(
    transport: str, length: int, reason: str | None, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    token = token_of_length(kit, length)
    settings = profile_settings("HS", kit.keys)
    if reason is ACCEPT:
        await assert_accepted(carrying(token, transport), token, settings=settings, caplog=caplog)
    else:
        await assert_refused(carrying(token, transport), reason, settings=settings, caplog=caplog)


async def test_D07_burst_of_bad_rs256_signatures(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    inner = RecordingApp()
    tokens = [kit.signed("RS256", key=kit.keys.rsa_other) for _ in range(200)]
    caplog.set_level(logging.INFO)
    with override_settings(CHANNELS_JWT=profile_settings("RS256", kit.keys)):
        app = JWTAuthMiddleware(inner)
        await warm_up(app)
        caplog.clear()
        results = [
            await handshake(app, carrying(token, "subprotocol").scope, accepted=False)
            for token in tokens
        ]
    assert {result.messages[1]["code"] for result in results} == {4401}
    assert all(result.finished_cleanly for result in results)
    assert sum(result.queries for result in results) == 0
    times = sorted(result.seconds for result in results)
    # Bad RS256 signatures cost about 0.06 ms each to check; ASGI overhead dominates.
    assert times[len(times) // 2] < 0.005
    assert times[int(len(times) * 0.95)] < HANDSHAKE_SECONDS
    assert not inner.called
    assert len([record for record in caplog.records if record.name == "channels_jwt"]) == 200


#: A handshake that needs neither the network nor a fetch in flight must take less than this.
RESPONSIVE = 0.100


# --- D04, D05, D06: the JWKS endpoint under hostile load ----------------------------------------


def without_refetch_cooldown(app: JWTAuthMiddleware) -> None:
    """Let an unknown ``kid`` refetch at once (the middleware's own ``JWKSKeys`` has a public
    ``cooldown``, 30 s by default): a test of a refetch then needs no 30 s wait."""
    jwks = Pipeline.for_settings(app.settings).verifier.rules.jwks
    assert jwks is not None
    jwks.cooldown = 0


def es256_with_kid(kit: Kit, kid: str) -> str:
    return kit.signed("ES256", header={"alg": "ES256", "kid": kid})


async def test_D04_kid_flood_costs_at_most_one_refetch_and_the_loop_stays_responsive(
    kit: Kit, jwks_server: JWKSServer
) -> None:
    """1,000 tokens with random ``kid``: at most one refetch per 30 s cooldown, every one
    refused 4401, and a valid client still connects promptly while the flood runs."""
    jwks_server.publish(public_jwk(kit.keys.p256, "k1"))
    app = JWTAuthMiddleware(RecordingApp(), settings=jwks_settings(jwks_server, "ES256"))
    assert (await jwks_handshake(app, es256_with_kid(kit, "k1"))).accepted
    flood = [es256_with_kid(kit, uuid.uuid4().hex) for _ in range(1000)]

    outcomes, probes = [], []
    for start in range(0, len(flood), 50):
        batch = [jwks_handshake(app, token, timeout=10) for token in flood[start : start + 50]]
        probe = jwks_handshake(app, es256_with_kid(kit, "k1"))
        *results, probed = await asyncio.gather(*batch, probe)
        outcomes += results
        probes.append(probed)

    assert {(outcome.code, outcome.reason) for outcome in outcomes} == {(4401, "token_invalid")}
    assert all(probe.accepted for probe in probes)
    latencies = sorted(probe.seconds for probe in probes)
    print(
        f"\nD04: 1000 unknown kids, {jwks_server.requests} JWKS requests; valid client during "
        f"the flood: median {latencies[len(latencies) // 2] * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms"
    )
    assert jwks_server.requests <= 2
    assert latencies[len(latencies) // 2] < RESPONSIVE
    assert latencies[-1] < 1.0  # never stuck behind a fetch


@pytest.mark.parametrize(
    "stall",
    [
        pytest.param({"delay": 10}, id="D05-hanging"),
        pytest.param({"drip": 0.2}, id="D05-dripping"),
    ],
)
async def test_D05_stalled_endpoint_fails_new_kids_in_time_and_serves_cached_ones(
    kit: Kit, jwks_server: JWKSServer, stall: dict[str, float]
) -> None:
    """The endpoint stops answering, or answers a byte at a time: a token with a new ``kid``
    is closed 4503 once the fetch runs out of time (``JWKS_TIMEOUT_SECONDS``), while tokens
    with a cached ``kid`` are accepted at once throughout (the fetch never blocks the event
    loop)."""
    jwks_server.publish(public_jwk(kit.keys.p256, "k1"))
    settings = jwks_settings(jwks_server, "ES256", JWKS_TIMEOUT_SECONDS=1)
    app = JWTAuthMiddleware(RecordingApp(), settings=settings)
    assert (await jwks_handshake(app, es256_with_kid(kit, "k1"))).accepted
    without_refetch_cooldown(app)
    for name, value in stall.items():
        setattr(jwks_server, name, value)

    new_kid = asyncio.create_task(jwks_handshake(app, es256_with_kid(kit, "k2"), timeout=10))
    assert await asyncio.to_thread(jwks_server.wait_for_requests, 2) == 2
    cached = [await jwks_handshake(app, es256_with_kid(kit, "k1")) for _ in range(10)]
    fetch_still_hanging = not new_kid.done()
    refused = await new_kid

    assert fetch_still_hanging
    assert all(outcome.accepted for outcome in cached)
    assert max(outcome.seconds for outcome in cached) < RESPONSIVE
    assert (refused.code, refused.reason) == (4503, "auth_unavailable")
    assert 0.9 < refused.seconds < 2.5


@pytest.mark.parametrize(
    ("tls", "drip_headers"),
    [
        pytest.param(False, True, id="D05-drip-from-the-status-line"),
        pytest.param(False, False, id="D05-drip-the-body"),
        pytest.param(True, False, id="D05-drip-the-body-over-tls"),
    ],
)
async def test_D05_dripping_endpoint_is_cut_off_at_the_timeout(
    kit: Kit,
    tls: bool,
    drip_headers: bool,
    loopback_certificate: Certificate,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One byte every 200 ms keeps each socket read far under a 1 s timeout, yet the whole
    fetch gets 1 s: the handshake is closed 4503 (nothing cached), logged like a timeout, and
    the fetch hangs up instead of reading on."""
    monkeypatch.setenv("SSL_CERT_FILE", str(loopback_certificate.certificate_file))
    with running_jwks_server(tls=loopback_certificate if tls else None) as jwks_server:
        jwks_server.publish(public_jwk(kit.keys.p256, "k1"))
        jwks_server.drip, jwks_server.drip_headers = 0.2, drip_headers
        settings = jwks_settings(jwks_server, "ES256", JWKS_TIMEOUT_SECONDS=1)
        app = JWTAuthMiddleware(RecordingApp(), settings=settings)
        caplog.set_level(logging.WARNING, LOGGER)
        started = time.monotonic()

        refused = await jwks_handshake(app, es256_with_kid(kit, "k1"), timeout=15)
        hung_up = await asyncio.to_thread(jwks_server.wait_for_hangup, 3)

    print(
        f"\nD05 JWKS dripping from the {'status line' if drip_headers else 'body'} over "
        f"{'https' if tls else 'http'}, JWKS_TIMEOUT_SECONDS=1: 4503 after "
        f"{refused.seconds * 1000:.0f} ms"
        + ("" if hung_up is None else f", server saw the hang-up at {hung_up - started:.2f} s")
    )
    assert (refused.code, refused.reason) == (4503, "auth_unavailable")
    assert 0.9 < refused.seconds < 1.5
    assert hung_up is not None
    assert hung_up - started < 2.0
    assert warnings_of(caplog)[0] == (
        f"JWKS fetch from {jwks_server.url} failed: PyJWKClientConnectionError"
    )


@pytest.mark.parametrize(
    "trusted",
    [
        pytest.param(True, id="D05-https-trusted-certificate"),
        pytest.param(False, id="D05-https-untrusted-certificate"),
    ],
)
async def test_D05_https_endpoint_serves_keys_only_under_a_trusted_certificate(
    kit: Kit, trusted: bool, loopback_certificate: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The certificate is verified: an endpoint the system does not trust is as good as down
    (4503), and is never asked for the key set."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(loopback_certificate.certificate_file))
    with running_jwks_server(tls=loopback_certificate) as jwks_server:
        jwks_server.publish(public_jwk(kit.keys.p256, "k1"))
        app = JWTAuthMiddleware(RecordingApp(), settings=jwks_settings(jwks_server, "ES256"))

        outcome = await jwks_handshake(app, es256_with_kid(kit, "k1"))

    assert (outcome.code, jwks_server.requests) == ((None, 1) if trusted else (4503, 0))


async def test_D05_broken_endpoint_keeps_cached_keys_working(
    kit: Kit, jwks_server: JWKSServer
) -> None:
    """HTTP 500 once the cache has expired: cached keys still verify (a stale set beats none),
    a new ``kid`` is closed 4503 without waiting."""
    jwks_server.publish(public_jwk(kit.keys.p256, "k1"))
    settings = jwks_settings(jwks_server, "ES256", JWKS_CACHE_SECONDS=0.2)
    app = JWTAuthMiddleware(RecordingApp(), settings=settings)
    assert (await jwks_handshake(app, es256_with_kid(kit, "k1"))).accepted
    without_refetch_cooldown(app)
    jwks_server.status = 500
    await asyncio.sleep(0.25)

    cached = [await jwks_handshake(app, es256_with_kid(kit, "k1")) for _ in range(5)]
    new_kid = await jwks_handshake(app, es256_with_kid(kit, "k2"))

    assert all(outcome.accepted for outcome in cached)
    assert max(outcome.seconds for outcome in cached) < RESPONSIVE
    assert (new_kid.code, new_kid.reason) == (4503, "auth_unavailable")
    assert new_kid.seconds < 1.0


#: Garbage a JWKS-configured middleware must refuse before looking for any key.
BEFORE_ANY_KEY: list[Any] = [
    pytest.param(lambda k: "not-a-jwt", MALFORMED, id="D06-malformed"),
    pytest.param(lambda k: k.unsecured({"alg": "none", "kid": "k1"}), INVALID, id="D06-alg-none"),
    pytest.param(lambda k: k.header(kid="k1"), INVALID, id="D06-hs256-under-rs256"),
    pytest.param(lambda k: k.rs256(kid="k1", crit=["x"], x=1), MALFORMED, id="D06-crit"),
    pytest.param(lambda k: k.rs256(kid=12), MALFORMED, id="D06-kid-not-a-string"),
    pytest.param(lambda k: k.rs256(kid="k1") + "=", MALFORMED, id="D06-padded-signature"),
    pytest.param(
        lambda k: k.signed("RS256", k.claims(exp="9999999999"), {"alg": "RS256", "kid": "k1"}),
        INVALID,
        id="D06-exp-string",
    ),
]


@pytest.mark.parametrize(("token", "reason"), BEFORE_ANY_KEY)
async def test_D06_garbage_fetches_no_key_and_queries_nothing(
    token: Callable[[Kit], str],
    reason: str,
    kit: Kit,
    jwks_server: JWKSServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused on its face: no request to the key endpoint (cold cache) and no query."""
    jwks_server.publish(public_jwk(kit.keys.rsa, "k1"))
    await assert_refused(
        carrying(token(kit), "subprotocol"),
        reason,
        settings=jwks_settings(jwks_server),
        caplog=caplog,
    )
    assert jwks_server.requests == 0


AFTER_THE_KEY: list[Any] = [
    pytest.param(
        lambda k: k.rs256(kid="k1", key=k.keys.rsa_other), (4401, INVALID), id="D06-bad-signature"
    ),
    pytest.param(
        lambda k: k.signed(
            "RS256", k.claims(iat=now() - 600, exp=now() - 300), {"alg": "RS256", "kid": "k1"}
        ),
        (4440, EXPIRED),
        id="D06-expired",
    ),
    pytest.param(
        lambda k: k.signed("RS256", k.claims(token_type="refresh"), {"alg": "RS256", "kid": "k1"}),
        (4401, INVALID),
        id="D06-refresh-token",
    ),
    pytest.param(
        lambda k: k.signed("RS256", k.claims(user_id="1 OR 1=1"), {"alg": "RS256", "kid": "k1"}),
        (4401, INVALID),
        id="D06-sql-ish-user-id",
    ),
]


@pytest.mark.parametrize(("token", "expected"), AFTER_THE_KEY)
async def test_D06_refused_after_the_signature_check_costs_no_fetch_and_no_query(
    token: Callable[[Kit], str], expected: tuple[int, str], kit: Kit, jwks_server: JWKSServer
) -> None:
    """With the key cached, bad signatures, expired tokens and bad claims cost nothing more:
    no new fetch, no query."""
    jwks_server.publish(public_jwk(kit.keys.rsa, "k1"))
    inner = RecordingApp()
    app = JWTAuthMiddleware(inner, settings=jwks_settings(jwks_server))
    warm = await handshake(app, carrying(kit.rs256(kid="k1"), "subprotocol").scope, accepted=True)
    assert (warm.queries, jwks_server.requests) == (1, 1)
    inner.scopes.clear()

    result = await handshake(app, carrying(token(kit), "subprotocol").scope, accepted=False)

    assert refused_outcome(result) == expected
    assert result.queries == 0
    assert jwks_server.requests == 1
    assert not inner.called
