"""Properties of the whole middleware: hostile tokens and scopes through ``JWTAuthMiddleware``.

Each example drives one real handshake through the middleware with a hand-built scope
(``asgiref``'s ``ApplicationCommunicator``, as ``tests/catalogue/kit.py`` does), with tokens
signed by real keys (HS256, and RS256/ES256/EdDSA with the session keys), a real database
holding user 1 (active) and user 2 (inactive), and asserts:

- never accepted unless validly signed for the active user: an accepted token passes an
  independent check (PyJWT with the real key, allowlist and required claims, plus strict claim
  types) and, under HMAC, is byte for byte a string the key signed;
- a valid token, or one re-encoded with the same content and re-signed, is accepted;
- no exception escapes the middleware, nothing is logged at ERROR, and no token failure ends
  as 4503 (nothing here can make the infrastructure fail);
- every refusal closes with a documented code (``CloseCode``) and the reason of that code,
  after an accept naming the marker (if offered) and never the token;
- no database query for anything refused before the user lookup (catalogue row D06), one
  for a lookup;
- bounded time per case;
- the token, or any distinctive part of it, is in no log record, close reason or accepted
  subprotocol, and in no part of the scope the application sees.

The cases tried per property are printed by ``--hypothesis-show-statistics`` (the ``event``
lines give the outcomes' mix).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

import jwt
import pytest
from asgiref.testing import ApplicationCommunicator
from hypothesis import event, given, settings
from hypothesis import strategies as st

from channels_jwt import JWTAuthMiddleware
from channels_jwt.exceptions import REASONS, CloseCode
from tests.catalogue.kit import asymmetric_jws, compact_json, counted_queries, fragments, hmac_jws
from tests.harness import (
    HS_KEY,
    MARKER,
    Keys,
    RecordingApp,
    claims_for,
    user_pk_range,
    websocket_scope,
)
from tests.properties.mutations import (
    ALGORITHMS,
    SAME_CONTENT_STYLES,
    ChangeClaim,
    ChangeHeader,
    Keep,
    Mutated,
    Reencode,
    Signer,
    SwapAlgorithm,
    claim_names,
    claim_values,
    header_names,
    header_values,
    mutate,
    mutation_chains,
)
from tests.properties.profiles import examples

PATH = "/ws/chat/"
#: A generous bound for one handshake (the advisory tests use 50 ms; this also runs under
#: coverage on a shared 2-core machine). A slow case is retried before the bound fails it.
HANDSHAKE_SECONDS = 0.100
PROFILES = ("HS256", "RS256", "ES256", "EdDSA")
TRANSPORTS = ("subprotocol", "query", "header")
SOURCES = ["subprotocol", "query", "header", "cookie"]
ACTIVE, INACTIVE = 1, 2
#: DESIGN.md section 5: the code of every reason.
CODE_OF_REASON = {
    "token_malformed": 4400,
    "token_missing": 4401,
    "token_invalid": 4401,
    "user_rejected": 4403,
    "auth_timeout": 4408,
    "rate_limited": 4429,
    "token_expired": 4440,
    "token_revoked": 4441,
    "auth_unavailable": 4503,
}
#: Refusals decided before the user lookup, which must not touch the database (D06).
BEFORE_LOOKUP = {4400, 4401, 4440}


def test_code_table_matches_the_package() -> None:
    """The table the properties check against is the package's own list of reasons."""
    assert set(CODE_OF_REASON) == set(REASONS)
    assert set(CODE_OF_REASON.values()) == {int(code) for code in CloseCode}


# --- profiles: keys, settings, the independent validity check -----------------------------------


@dataclass(frozen=True)
class Profile:
    """One key configuration: how to sign, what the middleware is told, how to verify."""

    algorithm: str
    signer: Signer
    verifying_key: Any
    settings: dict[str, Any]

    def mint(self, user_id: int = ACTIVE, **claims: Any) -> str:
        """A valid access token for ``user_id``."""
        payload = compact_json(claims_for(str(user_id), **claims))
        header = compact_json({"alg": self.algorithm, "typ": "JWT"})
        if self.algorithm == "HS256":
            return hmac_jws(header, payload)
        return asymmetric_jws(self.algorithm, self.signer.private_key, header, payload)


def profiles(keys: Keys) -> dict[str, Profile]:
    built = {
        "HS256": Profile(
            "HS256",
            Signer("HS256", HS_KEY.encode()),
            HS_KEY.encode(),
            {"ALGORITHMS": ["HS256"], "SIGNING_KEY": HS_KEY},
        )
    }
    for algorithm in PROFILES[1:]:
        private_key = keys.for_algorithm(algorithm)
        built[algorithm] = Profile(
            algorithm,
            Signer(algorithm, private_key),
            private_key.public_key(),
            {
                "ALGORITHMS": [algorithm],
                "VERIFYING_KEY": private_key.public_key(),
            },
        )
    for profile in built.values():
        profile.settings.update(TOKEN_SOURCES=SOURCES, COOKIE_NAME="jwt")
    return built


def _numeric_date(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def valid_for_active_user(token: str, profile: Profile) -> bool:
    """An independent check: validly signed, allowed algorithm, strict claims, user 1.

    Time claims get one second of leeway either way, so a token that crossed ``exp`` or
    ``iat`` between this check and the handshake is judged fairly.
    """
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token,
            profile.verifying_key,
            algorithms=[profile.algorithm],
            leeway=1,
            options={"require": ["exp", "iat", "user_id", "token_type"]},
        )
    except Exception:
        return False
    user_id = claims["user_id"]
    return (
        header.get("alg") == profile.algorithm
        and not {"crit", "b64", "zip"} & set(header)
        and all(_numeric_date(claims[name]) for name in ("exp", "iat", "nbf") if name in claims)
        and claims["token_type"] == "access"
        and (user_id == "1" or (type(user_id) is int and user_id == ACTIVE))
    )


# --- driving one handshake ----------------------------------------------------------------------


class Relay:
    """The inner application of a long-lived middleware, pointed at a fresh app per case."""

    def __init__(self) -> None:
        self.target = RecordingApp()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


@dataclass
class Outcome:
    """How one handshake ended."""

    accepted: bool
    code: int | None
    reason: str | None
    subprotocol: str | None
    seconds: float
    queries: int
    finished_cleanly: bool
    inner_scope: dict[str, Any] | None
    records: list[logging.LogRecord] = field(default_factory=list)


class Records(logging.Handler):
    """Collects every record (the ``caplog`` fixture cannot be reset per example)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs() -> Iterator[Records]:
    handler = Records()
    root, package = logging.getLogger(), logging.getLogger("channels_jwt")
    level = package.level
    root.addHandler(handler)
    package.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        package.setLevel(level)


async def connect(app: JWTAuthMiddleware, relay: Relay, scope: dict[str, Any]) -> Outcome:
    """One handshake; any exception escaping the middleware is re-raised here."""
    relay.target = inner = RecordingApp()
    communicator = ApplicationCommunicator(app, scope)
    with captured_logs() as logs:
        async with counted_queries() as queries:
            started = time.perf_counter()
            await communicator.send_input({"type": "websocket.connect"})
            first = await communicator.receive_output(timeout=2)
            assert first["type"] == "websocket.accept", first
            # The inner app runs (and records its scope) before it accepts; a rejection
            # accepts without running it, then closes at once.
            accepted = inner.called
            close = None if accepted else await communicator.receive_output(timeout=2)
            seconds = time.perf_counter() - started
            if accepted:
                await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
            await communicator.wait(timeout=2)
    future = communicator.future
    finished_cleanly = not future.cancelled() and future.exception() is None
    if close is not None:
        assert close["type"] == "websocket.close", close
        assert communicator.output_queue.empty()
    return Outcome(
        accepted=accepted,
        code=None if close is None else close["code"],
        reason=None if close is None else close.get("reason"),
        subprotocol=first.get("subprotocol"),
        seconds=seconds,
        queries=queries.total,
        finished_cleanly=finished_cleanly,
        inner_scope=inner.scopes[0] if accepted else None,
        records=logs.records,
    )


async def timed_connect(app: JWTAuthMiddleware, relay: Relay, scope: dict[str, Any]) -> Outcome:
    """As :func:`connect`; a case over the time bound is tried twice more (best time counts).

    A stalled CI machine is not a slow input: a costly input is slow every time.
    """
    outcome = await connect(app, relay, scope)
    for _ in range(2):
        if outcome.seconds < HANDSHAKE_SECONDS:
            break
        again = await connect(app, relay, scope)
        outcome.seconds = min(outcome.seconds, again.seconds)
    return outcome


def carrying(token: str, transport: str) -> dict[str, Any]:
    """A scope presenting ``token`` the way ``transport`` says (raw bytes where needed)."""
    raw = token.encode("utf-8", "surrogatepass")
    if transport == "subprotocol":
        return websocket_scope(PATH, subprotocols=[MARKER, token], extensions={})
    if transport == "query":
        return websocket_scope(
            PATH, query_string=b"room=1&token=" + quote_from_bytes(raw).encode(), extensions={}
        )
    return websocket_scope(PATH, headers=[(b"authorization", b"Bearer " + raw)], extensions={})


def offered(token: str, transport: str) -> list[str]:
    """The subprotocols :func:`carrying` offers."""
    return [MARKER, token] if transport == "subprotocol" else []


def presented(token: str, transport: str) -> str:
    """The credential the middleware is handed: ``Authorization: Bearer`` allows any number of
    spaces before the token (RFC 6750 ``1*SP``), and servers drop trailing ones (OWS)."""
    return token.strip(" ") if transport == "header" else token


def log_text(records: list[logging.LogRecord]) -> str:
    """All the records would write, tracebacks and raw arguments included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(f"{formatter.format(record)} {record.args!r}" for record in records)


def secrets_of(*tokens: str) -> set[str]:
    """What must not leak: every distinctive part of the tokens (20+ characters, so that an
    arbitrary string cannot collide with a word of a log line)."""
    return {fragment for fragment in fragments(*tokens) if len(fragment) >= 20}


def assert_refusal_is_well_formed(outcome: Outcome, subprotocols: list[str], token: str) -> None:
    """A documented code and its reason, after an accept that names the marker when offered,
    else nothing or another offered subprotocol, and never the token (DESIGN.md section 5)."""
    assert outcome.reason in CODE_OF_REASON, outcome.reason
    assert outcome.code == CODE_OF_REASON[outcome.reason]
    assert outcome.code in {int(code) for code in CloseCode}
    assert type(outcome.code) is int  # daphne refuses anything else
    assert len(outcome.reason.encode()) <= 123
    if MARKER in subprotocols:
        assert outcome.subprotocol == MARKER
    else:
        assert outcome.subprotocol is None or outcome.subprotocol in subprotocols
    if token != MARKER:  # (a "token" that is the marker itself is echoed as the marker)
        assert outcome.subprotocol != token
    failures = [
        record
        for record in outcome.records
        if record.name == "channels_jwt"
        and record.getMessage().startswith("WebSocket authentication failed: ")
    ]
    assert len(failures) == 1, "exactly one INFO line per rejection"


def assert_common_invariants(outcome: Outcome, secrets: set[str]) -> None:
    """What holds for every case, accepted or refused."""
    assert outcome.finished_cleanly, "an exception escaped the middleware"
    errors = [record for record in outcome.records if record.levelno >= logging.ERROR]
    assert errors == [], log_text(errors)
    assert outcome.code != 4503, "a token failure ended as an internal error"
    assert outcome.seconds < HANDSHAKE_SECONDS, f"{outcome.seconds * 1000:.1f} ms"
    if outcome.accepted:
        assert outcome.queries == 1
    elif outcome.code in BEFORE_LOOKUP:
        assert outcome.queries == 0, "refused before the lookup, yet the database was asked"
    else:
        # One query, unless the id is beyond the pk column's range (tests/conftest.py's
        # user_pk_range: PostgreSQL's 32-bit auth_user.id), which Django answers without one.
        assert outcome.code == 4403
        assert outcome.queries == 1 or user_pk_range()[1] < 2**63 - 1, outcome.queries
    texts = [log_text(outcome.records), str(outcome.reason), str(outcome.subprotocol)]
    if outcome.inner_scope is not None:
        scope = outcome.inner_scope
        texts += [repr(scope["subprotocols"]), repr(scope["query_string"]), repr(scope["headers"])]
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"token fragment {secret[:30]!r} leaked"


def assert_accepted_for_active_user(outcome: Outcome, token: str) -> None:
    assert outcome.inner_scope is not None
    user = outcome.inner_scope["user"]
    assert (user.pk, user.is_active, user.is_authenticated) == (ACTIVE, True, True)
    claims = outcome.inner_scope["jwt"].claims
    assert dict(claims) == jwt.decode(token, options={"verify_signature": False})


# --- fixtures -----------------------------------------------------------------------------------


class Site:
    """The middleware of each profile (built once per test), its relay, and the profiles."""

    def __init__(
        self, profiles: dict[str, Profile], apps: dict[str, JWTAuthMiddleware], relay: Relay
    ) -> None:
        self.profiles, self.apps, self.relay = profiles, apps, relay

    def __repr__(self) -> str:  # keys stay out of failure reports
        return f"Site({', '.join(self.profiles)})"


@pytest.fixture
def site(keys: Keys, django_user_model: Any, transactional_db: None) -> Site:
    """User 1 active, user 2 inactive; one middleware per profile, all sources enabled."""
    django_user_model.objects.create(id=ACTIVE, username="alice")
    django_user_model.objects.create(id=INACTIVE, username="bob", is_active=False)
    relay = Relay()
    built = profiles(keys)
    apps = {name: JWTAuthMiddleware(relay, settings=p.settings) for name, p in built.items()}
    return Site(built, apps, relay)


# --- the properties -----------------------------------------------------------------------------


@settings(max_examples=examples(1500))
@given(
    profile_name=st.sampled_from(PROFILES),
    transport=st.sampled_from(TRANSPORTS),
    chain=mutation_chains,
)
async def test_mutated_tokens_are_accepted_only_when_validly_signed(
    site: Site, profile_name: str, transport: str, chain: list[Any]
) -> None:
    profile = site.profiles[profile_name]
    original = profile.mint()
    sent: Mutated = mutate(original, chain, profile.signer)
    case = sent.changed_to(presented(sent.token, transport))
    valid_before = valid_for_active_user(case.token, profile)

    outcome = await timed_connect(
        site.apps[profile_name], site.relay, carrying(sent.token, transport)
    )

    event(f"{profile_name}: {outcome.reason or 'accepted'}")
    assert_common_invariants(outcome, secrets_of(original, sent.token))
    if outcome.accepted:
        assert valid_before or valid_for_active_user(case.token, profile)
        if profile.algorithm == "HS256":
            assert case.signed, "an HMAC token accepted that the key never signed"
        assert_accepted_for_active_user(outcome, case.token)
    else:
        assert_refusal_is_well_formed(outcome, offered(sent.token, transport), sent.token)
    if case.benign:
        assert outcome.accepted, f"a valid token was refused: {outcome.reason}"


signed_claim_changes = st.lists(
    st.builds(ChangeClaim, claim_names, claim_values, st.just(True)), min_size=1, max_size=4
)
signed_header_changes = st.lists(
    st.one_of(
        st.builds(ChangeHeader, header_names, header_values, st.just(True)),
        st.builds(SwapAlgorithm, st.sampled_from(ALGORITHMS), st.just(True)),
    ),
    max_size=2,
)


@settings(max_examples=examples(500))
@given(
    profile_name=st.sampled_from(PROFILES),
    transport=st.sampled_from(TRANSPORTS),
    changes=signed_claim_changes,
    header_changes=signed_header_changes,
)
async def test_signed_tokens_with_hostile_claims_are_accepted_only_when_valid(
    site: Site,
    profile_name: str,
    transport: str,
    changes: list[ChangeClaim],
    header_changes: list[ChangeHeader | SwapAlgorithm],
) -> None:
    """What a holder of the key could mint (an issuer bug, a token for another purpose):
    validly signed, with claims of any type and value, and odd header parameters. Accepted
    only when the claims make a valid access token for the active user."""
    profile = site.profiles[profile_name]
    original = profile.mint()
    case = mutate(original, [*changes, *header_changes], profile.signer)
    valid_before = valid_for_active_user(case.token, profile)

    outcome = await timed_connect(
        site.apps[profile_name], site.relay, carrying(case.token, transport)
    )

    event(f"signed, hostile claims: {outcome.reason or 'accepted'}")
    assert_common_invariants(outcome, secrets_of(original, case.token))
    if outcome.accepted:
        assert valid_before or valid_for_active_user(case.token, profile)
        assert_accepted_for_active_user(outcome, case.token)
    else:
        assert_refusal_is_well_formed(outcome, offered(case.token, transport), case.token)


@settings(max_examples=examples(500))
@given(
    profile_name=st.sampled_from(PROFILES),
    transport=st.sampled_from(TRANSPORTS),
    text=st.one_of(
        st.text(max_size=200),
        st.from_regex(
            r"[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_-]{0,200}\.[A-Za-z0-9_-]{0,90}", fullmatch=True
        ),
        st.binary(max_size=120).map(lambda raw: raw.decode("latin-1")),
    ),
)
async def test_arbitrary_strings_are_never_accepted(
    site: Site, profile_name: str, transport: str, text: str
) -> None:
    outcome = await timed_connect(site.apps[profile_name], site.relay, carrying(text, transport))

    event(f"arbitrary string: {outcome.reason or 'accepted'}")
    assert not outcome.accepted
    assert_common_invariants(outcome, secrets_of(text))
    assert_refusal_is_well_formed(outcome, offered(text, transport), text)
    if not presented(text, transport):
        assert outcome.reason == "token_missing"


@settings(max_examples=examples(100))
@given(
    profile_name=st.sampled_from(PROFILES),
    transport=st.sampled_from(TRANSPORTS),
    style=st.sampled_from(SAME_CONTENT_STYLES),
    segment=st.integers(0, 1),
)
async def test_same_content_reencoded_and_resigned_is_accepted(
    site: Site, profile_name: str, transport: str, style: str, segment: int
) -> None:
    """The positive side, drawn on its own so that it is not rare among the mutations."""
    profile = site.profiles[profile_name]
    original = profile.mint()
    case = mutate(original, [Keep(), Reencode(segment, style, resign=True)], profile.signer)
    assert case.benign

    outcome = await timed_connect(
        site.apps[profile_name], site.relay, carrying(case.token, transport)
    )

    assert outcome.accepted, outcome.reason
    assert_common_invariants(outcome, secrets_of(original, case.token))
    assert_accepted_for_active_user(outcome, case.token)


# --- credentials spread over a scope ------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One credential slot of a scope, and what is put there."""

    source: str
    content: str  # "valid", "inactive", "garbage" or "empty"


slot_strategy = st.builds(
    Slot,
    st.sampled_from(SOURCES),
    st.sampled_from(["valid", "valid", "inactive", "garbage", "empty"]),
)
noise_subprotocols = st.lists(
    st.sampled_from(["chat", "v2.chat", "graphql-ws", "x"]), max_size=4, unique=True
)
noise_fields = st.lists(
    st.sampled_from([b"room=1", b"a=%ff", b"xtoken=abc", b"Token=abc", b"flag", b"q=a+b"]),
    max_size=4,
)
noise_headers = st.lists(
    st.tuples(
        st.sampled_from([b"user-agent", b"x-token", b"accept-language", b"x-forwarded-for"]),
        st.binary(max_size=30),
    ),
    max_size=4,
)


def scope_with(
    slots: list[Slot],
    tokens: dict[str, str],
    subprotocols: list[str],
    fields: list[bytes],
    headers: list[tuple[bytes, bytes]],
    origin: bytes,
) -> dict[str, Any]:
    """A scope with noise, and each slot filled where its source reads credentials."""
    subprotocols, fields, headers = list(subprotocols), list(fields), list(headers)
    for slot in slots:
        value = tokens[slot.content]
        if slot.source == "subprotocol":
            subprotocols += [MARKER, value]
        elif slot.source == "query":
            fields.append(b"token=" + quote_from_bytes(value.encode()).encode())
        elif slot.source == "header":
            headers.append((b"authorization", b"Bearer " + value.encode()))
        else:
            headers.append((b"cookie", b"theme=dark; jwt=" + value.encode()))
    headers.insert(0, (b"origin", origin))
    return websocket_scope(
        PATH,
        query_string=b"&".join(fields),
        subprotocols=subprotocols,
        headers=headers,
        extensions={},
    )


@settings(max_examples=examples(600))
@given(
    slots=st.lists(slot_strategy, max_size=3),
    subprotocols=noise_subprotocols,
    fields=noise_fields,
    headers=noise_headers,
    origin=st.sampled_from(
        [b"http://testserver", b"https://evil.test", b"https://testserver", b"http://localhost"]
    ),
)
async def test_a_scope_is_accepted_only_with_one_credential_and_hands_on_none(
    site: Site,
    slots: list[Slot],
    subprotocols: list[str],
    fields: list[bytes],
    headers: list[tuple[bytes, bytes]],
    origin: bytes,
) -> None:
    """Credentials in zero, one or several sources (valid, for the inactive user, garbage or
    empty), beside credential-free noise: accepted only with exactly one, valid, and then the
    application sees none of it."""
    profile = site.profiles["HS256"]
    tokens = {
        "valid": profile.mint(),
        "inactive": profile.mint(INACTIVE),
        "garbage": "not-a-jwt-" + uuid.uuid4().hex,
        "empty": "",
    }
    scope = scope_with(slots, tokens, subprotocols, fields, headers, origin)
    # A cookie counts only when the page is the request's own origin, the scope's scheme (ws)
    # and Host (testserver): another scheme, or another allowed host, is not (DESIGN.md
    # section 1).
    trusted = origin == b"http://testserver"
    counted = [
        slot for slot in slots if slot.content != "empty" and (slot.source != "cookie" or trusted)
    ]

    outcome = await timed_connect(site.apps["HS256"], site.relay, scope)

    event(f"{len(counted)} credential(s): {outcome.reason or 'accepted'}")
    assert_common_invariants(outcome, secrets_of(tokens["valid"], tokens["inactive"]))
    if outcome.accepted:
        assert [slot.content for slot in counted] == ["valid"]
        assert_accepted_for_active_user(outcome, tokens["valid"])
        assert outcome.inner_scope is not None
        assert MARKER not in outcome.inner_scope["subprotocols"]
    else:
        assert_refusal_is_well_formed(outcome, scope["subprotocols"], tokens["valid"])
        if len(counted) > 1:
            assert outcome.reason == "token_malformed"
        elif not counted and len({slot.source for slot in slots}) == len(slots):
            # (An empty slot repeated in one source, "?token=&token=", is ambiguous: 4400.)
            assert outcome.reason == "token_missing"
    if [slot.content for slot in counted] == ["valid"] and len(slots) == 1:
        assert outcome.accepted


async def test_relay_drives_one_valid_handshake_per_transport(site: Site) -> None:
    """The driver itself: a valid token is accepted by every profile and transport."""
    for name, profile in site.profiles.items():
        for transport in TRANSPORTS:
            outcome = await connect(
                site.apps[name], site.relay, carrying(profile.mint(), transport)
            )
            assert outcome.accepted, (name, transport, outcome.reason)
            assert outcome.queries == 1
    # And an inactive user's valid token is refused after one query.
    outcome = await connect(
        site.apps["HS256"], site.relay, carrying(site.profiles["HS256"].mint(INACTIVE), "query")
    )
    assert (outcome.code, outcome.queries) == (4403, 1)
    await asyncio.sleep(0)
