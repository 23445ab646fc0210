"""Hostile-catalogue rows (research/security.md section 4) not covered by ``test_advisory.py``.

Every test id starts with (or contains) its catalogue id, so ``tests/test_catalogue.py`` finds
it. Same conventions as ``test_advisory.py``: hand-built scopes driven by ``asgiref``'s
``ApplicationCommunicator`` through the real middleware, real keys, a real database, a real
JWKS endpoint on 127.0.0.1 (``tests/jwks_server.py``) where keys come from one.

- A12: a JWKS key's own material used as an HMAC secret under ``alg: HS256``.
- D04, D05, D06: the JWKS side of denial of service: a ``kid`` flood, a slow or broken
  endpoint, and garbage that must never cause a key fetch or a query.
- T17, L01: a token expiring while its socket is open.
- U08: a password-fingerprint claim, enforced through the ``USER_RESOLVER`` extension point.
- U11: a UUID-keyed user model (the small app in ``tests/uuid_users``).
- K01-K10: configurations that must refuse to start (a system check error, and a handshake
  closed 4503 instead of anyone being let in).
- L02-L04: token leakage through exceptions and signals, close semantics for every reason in
  both reject modes, and unexpected exceptions inside the middleware.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.db import connection
from django.test import override_settings
from django.utils.crypto import constant_time_compare
from packaging.requirements import Requirement

from channels_jwt import JWTAuthMiddleware, TokenRevoked, signals
from channels_jwt.checks import check_settings
from channels_jwt.conf import Settings
from channels_jwt.exceptions import CloseCode
from channels_jwt.logs import RedactTokens
from channels_jwt.pipeline import Pipeline
from channels_jwt.users import database_user
from tests.conftest import (
    HS_KEY,
    Keys,
    RecordingApp,
    claims_for,
    hs_token,
    private_pem,
    public_pem,
)
from tests.jwks_server import JWKSServer, public_jwk, running_jwks_server
from tests.jwks_server import handshake as jwks_handshake
from tests.test_advisory import (
    ATTACKER_SECRET,
    EXPIRED,
    INVALID,
    MALFORMED,
    MARKER,
    UNAVAILABLE,
    Attempt,
    Kit,
    assert_accepted,
    assert_nothing_leaked,
    assert_refused,
    carrying,
    compact_json,
    handshake,
    hmac_jws,
    log_text,
    now,
    warm_up,
    ws_scope,
)

#: The HS profile of ``test_advisory.py`` (a whole ``CHANNELS_JWT`` replaces the project's).
HS_PROFILE = {"ALGORITHMS": ["HS256"], "SIGNING_KEY": HS_KEY}
#: How late after ``exp`` an in-process expiry close may arrive (as ``test_connection.py``).
LATENESS = 0.5
#: How early (the event loop's clock and the wall clock are read separately).
EARLINESS = 0.05
#: A handshake that needs neither the network nor a fetch in flight must take less than this.
RESPONSIVE = 0.100


@pytest.fixture
def kit(keys: Keys, django_user_model: Any, transactional_db: None) -> Kit:
    """Token builders; user 1 (``alice``, active) and user 2 (``bob``, inactive)."""
    django_user_model.objects.create(id=1, username="alice")
    django_user_model.objects.create(id=2, username="bob", is_active=False)
    return Kit(keys)


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    """A JWKS endpoint on 127.0.0.1 (empty until the test publishes keys)."""
    with running_jwks_server() as server:
        yield server


def jwks_settings(server: JWKSServer, algorithm: str = "RS256", **extra: Any) -> dict[str, Any]:
    """``CHANNELS_JWT`` taking keys from ``server`` (http is allowed on loopback only)."""
    return {"ALGORITHMS": [algorithm], "JWK_URL": server.url, **extra}


def refused_outcome(result: Any) -> tuple[int, str]:
    """The close code and reason of an accept-then-close rejection."""
    assert [message["type"] for message in result.messages] == [
        "websocket.accept",
        "websocket.close",
    ]
    close = result.messages[1]
    return close["code"], close["reason"]


# --- A12: JWKS key material as an HMAC secret ---------------------------------------------------


@pytest.mark.parametrize("transport", ["subprotocol", "query"])
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("jwk-json", id="A12-hs256-keyed-with-the-jwk-json"),
        pytest.param("jwk-pem", id="A12-hs256-keyed-with-the-jwk-pem"),
        pytest.param("jwk-modulus", id="A12-hs256-keyed-with-the-jwk-modulus"),
    ],
)
async def test_A12_hmac_token_naming_a_jwks_rsa_kid_is_refused(
    secret: str,
    transport: str,
    kit: Kit,
    jwks_server: JWKSServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CVE-2026-48523/48526: ``alg: HS256`` with the ``kid`` of an RSA JWK, MACed with that
    key's public material. HS256 is outside the (asymmetric) allowlist, so it is refused
    before any key is fetched."""
    jwk = public_jwk(kit.keys.rsa, "k1", alg="RS256")
    jwks_server.publish(jwk)
    material = {
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-pem": public_pem(kit.keys.rsa).encode(),
        "jwk-modulus": jwk["n"].encode(),
    }[secret]
    token = hmac_jws(
        compact_json({"alg": "HS256", "kid": "k1"}), compact_json(kit.claims()), key=material
    )
    await assert_refused(
        carrying(token, transport), INVALID, settings=jwks_settings(jwks_server), caplog=caplog
    )
    assert jwks_server.requests == 0


async def test_A12_positive_control_rs256_token_with_the_jwks_kid_is_accepted(
    kit: Kit, jwks_server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    jwks_server.publish(public_jwk(kit.keys.rsa, "k1", alg="RS256"))
    token = kit.rs256(kid="k1")
    await assert_accepted(
        carrying(token, "subprotocol"), token, settings=jwks_settings(jwks_server), caplog=caplog
    )
    assert jwks_server.requests == 1


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


async def test_D05_hanging_endpoint_fails_new_kids_in_time_and_serves_cached_ones(
    kit: Kit, jwks_server: JWKSServer
) -> None:
    """The endpoint stops answering: a token with a new ``kid`` is closed 4503 once the fetch
    times out (``JWKS_TIMEOUT_SECONDS``), while tokens with a cached ``kid`` are accepted at
    once throughout (the fetch never blocks the event loop)."""
    jwks_server.publish(public_jwk(kit.keys.p256, "k1"))
    settings = jwks_settings(jwks_server, "ES256", JWKS_TIMEOUT_SECONDS=1)
    app = JWTAuthMiddleware(RecordingApp(), settings=settings)
    assert (await jwks_handshake(app, es256_with_kid(kit, "k1"))).accepted
    without_refetch_cooldown(app)
    jwks_server.delay = 10

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
    pytest.param(lambda k: k.unsecured({"alg": "none", "kid": "k1"}), MALFORMED, id="D06-alg-none"),
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


# --- T17, L01: the token expires while the socket is open ---------------------------------------


def soon() -> int:
    """A whole-second ``exp`` 0.3 to 1.3 s ahead (a fractional one is compared truncated at
    the handshake, as ``jwt.decode`` does, so it could already count as expired there)."""
    return math.ceil(time.time() + 0.3)


async def open_socket(app: Any, token: str) -> ApplicationCommunicator:
    communicator = ApplicationCommunicator(app, ws_scope(subprotocols=[MARKER, token]))
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output(2) == {
        "type": "websocket.accept",
        "subprotocol": MARKER,
    }
    return communicator


async def test_T17_open_socket_is_closed_4440_at_exp(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """An idle socket whose token expires is closed by the server at ``exp``, no later."""
    app = JWTAuthMiddleware(RecordingApp())
    await warm_up(app)  # the first handshake of a process builds the pipeline: not timed here
    exp = soon()
    communicator = await open_socket(app, kit.token(exp=exp))
    assert await communicator.receive_nothing(max(0.0, exp - time.time() - EARLINESS))

    close = await communicator.receive_output(exp - time.time() + LATENESS + 2)
    closed_at = time.time()

    assert close == {"type": "websocket.close", "code": 4440, "reason": "token_expired"}
    assert exp - EARLINESS <= closed_at <= exp + LATENESS
    await communicator.send_input({"type": "websocket.disconnect", "code": 4440})
    await communicator.wait(2)
    assert communicator.future.exception() is None


async def test_L01_frame_arriving_after_exp_is_not_passed_on_and_closes_4440(
    kit: Kit,
) -> None:
    """Frames pass while the token is valid; one sent after ``exp`` never reaches the app,
    whichever comes first (the timer or the frame), and the socket is closed 4440."""
    app = JWTAuthMiddleware(RecordingApp())
    await warm_up(app)
    exp = soon()
    communicator = await open_socket(app, kit.token(exp=exp))
    await communicator.send_input({"type": "websocket.receive", "text": "before"})
    assert await communicator.receive_output(2) == {"type": "websocket.send", "text": "before"}

    # Hold the loop past exp (a busy server), so the frame is already waiting when it runs.
    time.sleep(max(0.0, exp - time.time()) + 0.05)  # noqa: ASYNC251
    await communicator.send_input({"type": "websocket.receive", "text": "after"})

    assert await communicator.receive_output(2) == {
        "type": "websocket.close",
        "code": 4440,
        "reason": "token_expired",
    }
    assert await communicator.receive_nothing(0.1)
    await communicator.send_input({"type": "websocket.disconnect", "code": 4440})
    await communicator.wait(2)


# --- U08: a password-fingerprint claim ----------------------------------------------------------


async def fingerprint_resolver(claims: Mapping[str, Any], scope: Any) -> Any:
    """A project's resolver: the built-in lookup, then the token's ``pwd`` claim compared with
    the user's current session hash (it changes with the password)."""
    user = await database_user(claims, scope)
    fingerprint = claims.get("pwd")
    if not isinstance(fingerprint, str) or not constant_time_compare(
        fingerprint, user.get_session_auth_hash()
    ):
        raise TokenRevoked("password changed since the token was issued")
    return user


FINGERPRINT = {**HS_PROFILE, "USER_RESOLVER": fingerprint_resolver}


@pytest.mark.parametrize("transport", ["subprotocol", "query"])
async def test_U08_token_from_before_a_password_change_is_revoked(
    transport: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await database_sync_to_async(get_user_model().objects.get)(pk=1)
    token = kit.token(pwd=alice.get_session_auth_hash())
    await assert_accepted(carrying(token, transport), token, settings=FINGERPRINT, caplog=caplog)

    alice.set_password("a-new-password")
    await database_sync_to_async(alice.save)()

    await assert_refused(
        carrying(token, transport), "token_revoked", settings=FINGERPRINT, caplog=caplog, queries=1
    )


async def test_U08_token_without_the_fingerprint_claim_is_revoked(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    await assert_refused(
        carrying(kit.token(), "subprotocol"),
        "token_revoked",
        settings=FINGERPRINT,
        caplog=caplog,
        queries=1,
    )


# --- U11: a UUID-keyed user model ---------------------------------------------------------------


@pytest.fixture
def uuid_users(transactional_db: None) -> Iterator[Any]:
    """``AUTH_USER_MODEL`` swapped for ``tests.uuid_users.UUIDUser``, its table created."""
    installed = [*django_settings.INSTALLED_APPS, "tests.uuid_users"]
    with override_settings(INSTALLED_APPS=installed, AUTH_USER_MODEL="uuid_users.UUIDUser"):
        model = get_user_model()
        with connection.schema_editor() as editor:
            editor.create_model(model)
        try:
            yield model
        finally:
            with connection.schema_editor() as editor:
                editor.delete_model(model)


@pytest.fixture
def uuid_user(uuid_users: Any) -> Any:
    return uuid_users.objects.create(id=uuid.UUID(int=0x1234), username="carol")


def uuid_token(user_id: Any) -> str:
    """A valid HS256 token whose user id claim is ``user_id``, JSON type kept."""
    return hs_token({**claims_for(), "user_id": user_id})


@pytest.mark.parametrize(
    "user_id",
    [
        pytest.param("not-a-uuid", id="U11-not-a-uuid"),
        pytest.param("1", id="U11-integer-string"),
        pytest.param(1, id="U11-json-integer"),
        pytest.param("00000000000000000000000000001234", id="U11-unhyphenated"),
        pytest.param("{00000000-0000-0000-0000-000000001234}", id="U11-braced"),
        pytest.param(" 00000000-0000-0000-0000-000000001234", id="U11-leading-space"),
        pytest.param("urn:uuid:00000000-0000-0000-0000-000000001234", id="U11-urn"),
    ],
)
async def test_U11_malformed_uuid_user_id_is_invalid_without_a_query(
    user_id: Any, uuid_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await assert_refused(
        carrying(uuid_token(user_id), "subprotocol"), INVALID, settings=HS_PROFILE, caplog=caplog
    )


async def test_U11_canonical_uuid_user_id_is_accepted(uuid_user: Any) -> None:
    inner = RecordingApp()
    token = uuid_token(str(uuid_user.pk).upper())
    result = await handshake(
        JWTAuthMiddleware(inner), carrying(token, "subprotocol").scope, accepted=True
    )
    assert result.queries == 1
    assert inner.scopes[0]["user"] == uuid_user
    assert inner.scopes[0]["jwt"].claims["user_id"] == str(uuid_user.pk).upper()


async def test_U11_unknown_uuid_is_rejected_after_one_query(
    uuid_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await assert_refused(
        carrying(uuid_token(str(uuid.uuid4())), "subprotocol"),
        "user_rejected",
        settings=HS_PROFILE,
        caplog=caplog,
        queries=1,
    )


# --- K01-K10: configurations that must refuse to start -----------------------------------------


@dataclass(frozen=True)
class BootRow:
    """A bad configuration, the check that names it, and a token its author would send."""

    id: str
    config: Callable[[Keys], dict[str, Any]]
    check: str
    token: Callable[[Kit], str]


def hs256_with(secret: bytes) -> Callable[[Kit], str]:
    return lambda kit: kit.hs(key=secret)


BOOT_ROWS = [
    BootRow(
        "K01-alg-none",
        lambda k: {"ALGORITHMS": ["none"]},
        "E004",
        lambda kit: kit.unsecured({"alg": "none"}),
    ),
    BootRow(
        "K01-none-in-any-case-beside-hs256",
        lambda k: {"ALGORITHMS": ["HS256", "NoNe"], "SIGNING_KEY": HS_KEY},
        "E004",
        lambda kit: kit.hs(),
    ),
    BootRow(
        "K02-mixed-families",
        lambda k: {
            "ALGORITHMS": ["RS256", "HS256"],
            "SIGNING_KEY": HS_KEY,
            "VERIFYING_KEY": public_pem(k.rsa),
        },
        "E005",
        lambda kit: kit.hs(),
    ),
    BootRow(
        "K03-hmac-key-31-bytes",
        lambda k: {"ALGORITHMS": ["HS256"], "SIGNING_KEY": "k" * 31},
        "E007",
        hs256_with(b"k" * 31),
    ),
    BootRow(
        "K03-hmac-key-empty",
        lambda k: {"ALGORITHMS": ["HS256"], "SIGNING_KEY": ""},
        "E006",
        hs256_with(b""),
    ),
    BootRow(
        "K05-algorithms-as-a-string",
        lambda k: {"ALGORITHMS": "RS256,HS256", "SIGNING_KEY": HS_KEY},
        "E002",
        lambda kit: kit.hs(),
    ),
    BootRow(
        "K06-rsa-1024-verifying-key",
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": public_pem(k.rsa_small)},
        "E010",
        lambda kit: kit.rs256(key=kit.keys.rsa_small),
    ),
    BootRow(
        "K07-private-key-as-verifying-key",
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": private_pem(k.rsa)},
        "E011",
        lambda kit: kit.signed("RS256"),
    ),
    *[
        BootRow(
            f"K08-jwks-url-{label}",
            lambda k, u=url: {"ALGORITHMS": ["RS256"], "JWK_URL": u},
            "E029",
            lambda kit: kit.rs256(kid="k1"),
        )
        for label, url in (
            ("http-not-loopback", "http://idp.example/.well-known/jwks.json"),
            ("file-scheme", "file:///etc/jwks.json"),
            ("ftp-scheme", "ftp://idp.example/jwks.json"),
        )
    ],
    *[
        BootRow(
            f"K09-leeway-{label}",
            lambda k, v=value: {"ALGORITHMS": ["HS256"], "SIGNING_KEY": HS_KEY, "LEEWAY": v},
            "E014",
            lambda kit: kit.hs(),
        )
        for label, value in (("negative", -1), ("61-seconds", 61), ("300-seconds", 300))
    ],
]


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in BOOT_ROWS])
async def test_K_bad_configuration_refuses_every_handshake(
    row: BootRow, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """BOOT: the system check reports an error (``manage.py check`` fails on it), and the
    middleware, if started anyway, lets nobody in: 4503 and an ERROR naming the check."""
    config = row.config(kit.keys)
    inner = RecordingApp()
    caplog.set_level(logging.INFO, "channels_jwt")
    with override_settings(CHANNELS_JWT=config):
        messages = check_settings(Settings())
        result = await handshake(
            JWTAuthMiddleware(inner), carrying(row.token(kit), "subprotocol").scope, accepted=False
        )

    errors = [message.id for message in messages if message.level >= checks.ERROR]
    assert f"channels_jwt.{row.check}" in errors
    assert refused_outcome(result) == (4503, UNAVAILABLE)
    assert result.finished_cleanly
    assert not inner.called
    assert result.queries == 0
    logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].startswith("channels_jwt is misconfigured: channels_jwt.E0")


async def test_K04_signing_key_equal_to_secret_key_warns_loudly(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """Key reuse across purposes (RFC 8725 section 3.5): a warning, not a refusal (the
    catalogue allows either); tokens signed with that key still authenticate."""
    config = {"ALGORITHMS": ["HS256"], "SIGNING_KEY": django_settings.SECRET_KEY}
    with override_settings(CHANNELS_JWT=config):
        warnings = [message.id for message in check_settings(Settings())]
    assert "channels_jwt.W002" in warnings
    token = kit.hs(key=django_settings.SECRET_KEY.encode())
    await assert_accepted(carrying(token, "subprotocol"), token, settings=config, caplog=caplog)


def test_K10_pyjwt_older_than_2_14_cannot_be_installed_with_the_package() -> None:
    """The PyJWT releases before 2.14 accept forged and non-canonical tokens (research 3.1):
    the package's requirement excludes them, so an installer refuses the combination."""
    requirements = [
        Requirement(text)
        for text in importlib.metadata.requires("channels-jwt") or []
        if Requirement(text).name.lower() == "pyjwt" and Requirement(text).marker is None
    ]
    assert len(requirements) == 1
    specifier = requirements[0].specifier
    assert not specifier.contains("2.13.99")
    assert not specifier.contains("2.12.1")
    assert specifier.contains("2.14.0")
    assert specifier.contains(jwt.__version__)


# --- L02: the token in no log line, reason, subprotocol, exception or signal --------------------


async def resolver_quoting_its_input(claims: Mapping[str, Any], scope: Any) -> Any:
    """A failing project resolver whose error message quotes everything it was given."""
    raise RuntimeError(f"lookup failed for {dict(claims)!r} in {scope!r}")


async def revocation_quoting_its_input(claims: Mapping[str, Any]) -> bool:
    raise ConnectionError(f"denylist unreachable while checking {dict(claims)!r}")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"USER_RESOLVER": resolver_quoting_its_input}, id="L02-resolver-error"),
        pytest.param({"REVOCATION_CHECK": revocation_quoting_its_input}, id="L02-revocation-error"),
    ],
)
async def test_L02_hook_errors_leave_no_secret_in_logs(
    settings: dict[str, Any], kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing hook's exception text (here: every claim, and the scope it was handed) is
    not logged: the middleware logs the exception's type only, without a traceback, and
    closes 4503. (The scope a resolver gets holds no token at all.)"""
    secret = "s3cr3t-" + uuid.uuid4().hex
    token = kit.token(secret_echo=secret)
    await assert_refused(
        Attempt(carrying(token, "subprotocol").scope, (token, secret)),
        UNAVAILABLE,
        settings={**HS_PROFILE, **settings},
        caplog=caplog,
    )


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param("authentication_failed", id="L02-failure-signal"),
        pytest.param("authenticated", id="L02-success-signal"),
    ],
)
async def test_L02_signal_receivers_never_see_the_token(
    signal: str, kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """What receivers get (the scope, the error, the claims) holds no token; a receiver that
    raises with everything it got in the message changes nothing and leaks nothing."""
    seen: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        text = repr(kwargs) + str(kwargs.get("error", ""))
        seen.append(text)
        raise ValueError(text)

    token = kit.token() if signal == "authenticated" else kit.token(exp=now() - 10)
    signal_object = getattr(signals, signal)
    signal_object.connect(receiver, dispatch_uid="test_L02")
    caplog.set_level(logging.DEBUG)
    try:
        inner = RecordingApp()
        result = await handshake(
            JWTAuthMiddleware(inner),
            carrying(token, "query").scope,
            accepted=signal == "authenticated",
        )
    finally:
        signal_object.disconnect(dispatch_uid="test_L02")

    assert len(seen) == 1
    assert inner.called == (signal == "authenticated")
    if signal == "authentication_failed":
        assert refused_outcome(result) == (4440, EXPIRED)
    assert_nothing_leaked([*seen, log_text(caplog.records)], (token,))


def test_L02_uvicorn_access_line_is_redacted_by_the_documented_filter() -> None:
    """uvicorn logs the WebSocket path with its query string; ``RedactTokens`` on its logger
    masks the token (the query source's documented leak, RFC 6750 section 2.3)."""
    token = hs_token(claims_for())
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/ws/chat/?room=1&token={token}"),
        None,
    )
    assert RedactTokens().filter(record)
    assert_nothing_leaked([record.getMessage()], (token,))
    assert "room=1" in record.getMessage()


# --- L03: close semantics for every reason ------------------------------------------------------


async def crashing_resolver(claims: Mapping[str, Any], scope: Any) -> Any:
    raise RuntimeError("database is down")


async def everything_revoked(claims: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Failure:
    """One way to be refused: the token, extra settings, the code and reason expected."""

    token: Callable[[Kit], str | None]
    settings: Mapping[str, Any]
    code: CloseCode
    reason: str
    status: int


FAILURES = {
    "token_malformed": Failure(lambda k: "x.y", {}, CloseCode.TOKEN_MALFORMED, MALFORMED, 401),
    "token_missing": Failure(lambda k: None, {}, CloseCode.UNAUTHENTICATED, "token_missing", 401),
    "token_invalid": Failure(
        lambda k: k.hs(key=ATTACKER_SECRET), {}, CloseCode.UNAUTHENTICATED, INVALID, 401
    ),
    "user_rejected": Failure(
        lambda k: k.token(user_id="2"), {}, CloseCode.USER_REJECTED, "user_rejected", 403
    ),
    "token_expired": Failure(
        lambda k: k.token(exp=now() - 5), {}, CloseCode.TOKEN_EXPIRED, EXPIRED, 401
    ),
    "token_revoked": Failure(
        lambda k: k.token(),
        {"REVOCATION_CHECK": everything_revoked},
        CloseCode.TOKEN_REVOKED,
        "token_revoked",
        401,
    ),
    "auth_unavailable": Failure(
        lambda k: k.token(),
        {"USER_RESOLVER": crashing_resolver},
        CloseCode.AUTH_UNAVAILABLE,
        UNAVAILABLE,
        503,
    ),
}


def offering(token: str | None, *, marker: bool, extensions: dict[str, Any]) -> dict[str, Any]:
    """A scope offering ``chat`` (and the marker and token when ``marker``), or the token in
    the query string."""
    if marker:
        offered = ["chat", MARKER] + ([token] if token is not None else [])
        scope = ws_scope(subprotocols=offered)
    else:
        query = b"" if token is None else b"token=" + token.encode()
        scope = ws_scope(subprotocols=["chat"], query_string=query)
    scope["extensions"] = extensions
    return scope


async def run_rejection(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Connect and collect every message the middleware sends until it returns."""
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.wait(2)
    assert communicator.future.exception() is None
    messages = []
    while not communicator.output_queue.empty():
        messages.append(communicator.output_queue.get_nowait())
    return messages


@pytest.mark.parametrize("marker", [True, False], ids=["marker-offered", "no-marker"])
@pytest.mark.parametrize("reason", [pytest.param(r, id=f"L03-{r}") for r in FAILURES])
async def test_L03_close_mode_accepts_then_closes_with_the_code(
    reason: str, marker: bool, kit: Kit
) -> None:
    """``REJECT_MODE="close"``: accept (naming the marker when offered, else another offered
    subprotocol that cannot be a token) then close with the code: a private-use code (RFC
    6455 section 7.4.2), a plain ``int``, the reason of the table, at most 123 bytes."""
    failure = FAILURES[reason]
    inner = RecordingApp()
    app = JWTAuthMiddleware(inner, settings=dict(failure.settings))
    messages = await run_rejection(app, offering(failure.token(kit), marker=marker, extensions={}))

    assert messages == [
        {"type": "websocket.accept", "subprotocol": MARKER if marker else "chat"},
        {"type": "websocket.close", "code": int(failure.code), "reason": failure.reason},
    ]
    code = messages[1]["code"]
    assert type(code) is int
    assert 4000 <= code <= 4999
    assert len(messages[1]["reason"].encode()) <= 123
    assert not inner.called


@pytest.mark.parametrize("reason", [pytest.param(r, id=f"L03-deny-{r}") for r in FAILURES])
async def test_L03_deny_mode_answers_http_or_closes_before_accept(reason: str, kit: Kit) -> None:
    """``REJECT_MODE="deny"``: an HTTP status and a JSON body with the code where the server
    offers the denial-response extension, otherwise a close before any accept."""
    failure = FAILURES[reason]
    settings = {**failure.settings, "REJECT_MODE": "deny"}
    token = failure.token(kit)

    with_extension = await run_rejection(
        JWTAuthMiddleware(RecordingApp(), settings=settings),
        offering(token, marker=True, extensions={"websocket.http.response": {}}),
    )
    without = await run_rejection(
        JWTAuthMiddleware(RecordingApp(), settings=settings),
        offering(token, marker=True, extensions={}),
    )

    start, body = with_extension
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == failure.status
    assert body["type"] == "websocket.http.response.body"
    assert json.loads(body["body"]) == {"code": int(failure.code), "reason": failure.reason}
    headers = dict(start["headers"])
    if failure.status == 401:
        assert headers[b"www-authenticate"].startswith(b"Bearer")
    assert without == [
        {"type": "websocket.close", "code": int(failure.code), "reason": failure.reason}
    ]


# --- L04: unexpected exceptions inside the middleware -------------------------------------------


def sync_resolver_with_a_bug(claims: Mapping[str, Any], scope: Any) -> Any:
    return claims["no-such-claim"]  # KeyError


@pytest.mark.parametrize(
    ("scope_of", "settings"),
    [
        pytest.param(
            lambda token: carrying(token, "subprotocol").scope,
            {"USER_RESOLVER": crashing_resolver},
            id="L04-async-resolver-raises",
        ),
        pytest.param(
            lambda token: carrying(token, "query").scope,
            {"USER_RESOLVER": sync_resolver_with_a_bug},
            id="L04-sync-resolver-raises",
        ),
        pytest.param(
            # A server handing over a header value as str instead of bytes: extraction fails.
            lambda token: {
                **carrying(token, "subprotocol").scope,
                "headers": [(b"sec-websocket-protocol", f"{MARKER}, {token}")],
            },
            {},
            id="L04-malformed-scope",
        ),
        pytest.param(
            lambda token: carrying(token, "subprotocol").scope,
            {"ALGORITHMS": ["HS256"], "SIGNING_KEY": "short"},
            id="L04-misconfigured",
        ),
    ],
)
async def test_L04_unexpected_exception_closes_4503_without_running_the_app(
    scope_of: Callable[[str], dict[str, Any]],
    settings: dict[str, Any],
    kit: Kit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ERR:INTERNAL: closed 4503, the inner app never runs, nothing escapes, the cause is
    logged (WARNING for a failing hook, ERROR for a bug or a misconfiguration), the token
    is not."""
    inner = RecordingApp()
    token = kit.token()
    caplog.set_level(logging.INFO, "channels_jwt")
    app = JWTAuthMiddleware(inner, settings=settings)

    result = await handshake(app, scope_of(token), accepted=False)

    assert refused_outcome(result) == (4503, UNAVAILABLE)
    assert result.finished_cleanly
    assert not inner.called
    assert [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert_nothing_leaked([log_text(caplog.records)], (token,))
