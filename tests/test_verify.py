"""Unit tests for ``channels_jwt.verify``: strict verification of real, signed tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest

from channels_jwt.exceptions import (
    AuthenticationFailed,
    CloseCode,
    TokenExpired,
    TokenInvalid,
    TokenMalformed,
)
from channels_jwt.keys import VerifyingKeys
from channels_jwt.verify import MAX_JSON_DEPTH, TokenVerifier, VerificationRules
from tests.harness import (
    HS_KEY,
    Keys,
    claims_for,
    hs_token,
    public_pem,
    rs_verifier,
    verifier,
)

HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"]
ASYMMETRIC_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]


def rs_token(private_key: Any, claims: dict[str, Any], headers: Any = None) -> str:
    """An RS256 token signed with ``private_key``."""
    return jwt.encode(claims, private_key, algorithm="RS256", headers=headers)


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs_raw(header: bytes, payload: bytes) -> str:
    """A correctly HS256-signed token over exactly these header and payload bytes."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(HS_KEY.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


HS_HEADER = b'{"alg":"HS256","typ":"JWT"}'


def payload_json(**overrides: Any) -> bytes:
    """Valid claims as compact JSON bytes."""
    return json.dumps(claims_for(**overrides), separators=(",", ":")).encode()


def hs_with_header(**header: Any) -> str:
    """An HS256 token whose header holds ``header`` (written raw, bypassing PyJWT's checks)."""
    return hs_raw(json.dumps({"alg": "HS256", **header}).encode(), payload_json())


def hs_with_claims(claims: dict[str, Any]) -> str:
    """An HS256 token over ``claims`` written raw (PyJWT refuses to encode some bad claims)."""
    return hs_raw(HS_HEADER, json.dumps(claims).encode())


def without(name: str) -> dict[str, Any]:
    """Valid claims without ``name``."""
    claims = claims_for()
    del claims[name]
    return claims


def payload_with(raw_members: str) -> bytes:
    """Valid claims with ``raw_members`` (JSON text) spliced in before the closing brace."""
    return payload_json()[:-1] + b"," + raw_members.encode() + b"}"


def raises(verifier_: TokenVerifier, token: str, expected: type[AuthenticationFailed]) -> None:
    """Assert that ``token`` is rejected with exactly ``expected``."""
    with pytest.raises(AuthenticationFailed) as info:
        verifier_.verify(token)
    assert type(info.value) is expected, repr(info.value)


# --- valid tokens, every algorithm -------------------------------------------------------


@pytest.mark.parametrize("algorithm", HMAC_ALGORITHMS)
def test_valid_hmac_token(algorithm: str) -> None:
    claims = claims_for()
    token = jwt.encode(claims, HS_KEY, algorithm=algorithm)
    assert verifier(ALGORITHMS=[algorithm]).verify(token) == claims


@pytest.mark.parametrize("algorithm", ASYMMETRIC_ALGORITHMS)
def test_valid_asymmetric_token(keys: Keys, algorithm: str) -> None:
    private_key = keys.for_algorithm(algorithm)
    claims = claims_for()
    token = jwt.encode(claims, private_key, algorithm=algorithm)
    checker = verifier(ALGORITHMS=[algorithm], VERIFYING_KEY=public_pem(private_key))
    assert checker.verify(token) == claims


def test_several_algorithms_of_one_family_are_allowed() -> None:
    checker = verifier(ALGORITHMS=["HS256", "HS512"])
    assert checker.verify(jwt.encode(claims_for(), HS_KEY, algorithm="HS512"))["user_id"] == "1"


def test_verifier_built_directly_from_rules(keys: Keys) -> None:
    rules = VerificationRules(
        algorithms=("ES256",),
        hmac_secret=None,
        verifying_keys=VerifyingKeys.parse(public_pem(keys.p256)),
        audience=None,
        issuer=None,
        leeway=0,
        required_claims=("exp",),
        max_lifetime=None,
        token_type_claim=None,
        token_types=(),
        max_token_bytes=8192,
    )
    claims = {"exp": int(time.time()) + 60, "sub": "x"}
    token = jwt.encode(claims, keys.p256, algorithm="ES256")
    assert TokenVerifier(rules).verify(token) == claims


def test_verifier_keeps_its_rules() -> None:
    checker = verifier(ALGORITHMS=["HS384"], LEEWAY=5)
    assert checker.rules.algorithms == ("HS384",)
    assert checker.rules.leeway == 5
    assert checker.rules.hmac_secret == HS_KEY.encode()
    assert checker.rules.verifying_keys is None


# --- VERIFYING_KEY forms -----------------------------------------------------------------


def test_verifying_key_as_bytes(keys: Keys) -> None:
    checker = rs_verifier(keys, VERIFYING_KEY=public_pem(keys.rsa).encode())
    assert checker.verify(rs_token(keys.rsa, claims_for()))["user_id"] == "1"


@pytest.mark.parametrize("signer", ["rsa", "rsa_other"])
def test_verifying_key_list_accepts_every_key(keys: Keys, signer: str) -> None:
    checker = rs_verifier(keys, VERIFYING_KEY=[public_pem(keys.rsa_other), public_pem(keys.rsa)])
    assert checker.verify(rs_token(getattr(keys, signer), claims_for()))["user_id"] == "1"


def test_verifying_key_list_ignores_kid(keys: Keys) -> None:
    checker = rs_verifier(keys, VERIFYING_KEY=[public_pem(keys.rsa)])
    token = rs_token(keys.rsa, claims_for(), headers={"kid": "anything"})
    assert checker.verify(token)["user_id"] == "1"


def test_key_not_configured_is_rejected(keys: Keys) -> None:
    raises(rs_verifier(keys), rs_token(keys.rsa_other, claims_for()), TokenInvalid)


def test_key_of_other_type_than_algorithm_is_rejected(keys: Keys) -> None:
    checker = verifier(ALGORITHMS=["ES256"], VERIFYING_KEY=public_pem(keys.p384))
    token = jwt.encode(claims_for(), keys.p256, algorithm="ES256")
    raises(checker, token, TokenInvalid)


@pytest.fixture
def kid_verifier(keys: Keys) -> TokenVerifier:
    """RS256 with keys named ``one`` (``keys.rsa``) and ``two`` (``keys.rsa_other``)."""
    return rs_verifier(
        keys, VERIFYING_KEY={"one": public_pem(keys.rsa), "two": public_pem(keys.rsa_other)}
    )


@pytest.mark.parametrize(("kid", "signer"), [("one", "rsa"), ("two", "rsa_other")])
def test_kid_selects_the_named_key(
    keys: Keys, kid_verifier: TokenVerifier, kid: str, signer: str
) -> None:
    token = rs_token(getattr(keys, signer), claims_for(), headers={"kid": kid})
    assert kid_verifier.verify(token)["user_id"] == "1"


def test_kid_naming_another_key_is_rejected(keys: Keys, kid_verifier: TokenVerifier) -> None:
    token = rs_token(keys.rsa_other, claims_for(), headers={"kid": "one"})
    raises(kid_verifier, token, TokenInvalid)


def test_unknown_kid_is_rejected(keys: Keys, kid_verifier: TokenVerifier) -> None:
    token = rs_token(keys.rsa, claims_for(), headers={"kid": "three"})
    raises(kid_verifier, token, TokenInvalid)


@pytest.mark.parametrize("signer", ["rsa", "rsa_other"])
def test_no_kid_tries_every_named_key(keys: Keys, kid_verifier: TokenVerifier, signer: str) -> None:
    token = rs_token(getattr(keys, signer), claims_for())
    assert kid_verifier.verify(token)["user_id"] == "1"


# --- algorithm allowlist -----------------------------------------------------------------


def test_algorithm_outside_the_allowlist_is_rejected() -> None:
    token = jwt.encode(claims_for(), HS_KEY, algorithm="HS512")
    raises(verifier(ALGORITHMS=["HS256"]), token, TokenInvalid)


def test_asymmetric_token_against_hmac_allowlist_is_rejected(keys: Keys) -> None:
    raises(verifier(), rs_token(keys.rsa, claims_for()), TokenInvalid)


def test_key_confusion_hmac_signed_with_public_key_is_rejected(keys: Keys) -> None:
    signing_input = b64(b'{"alg":"HS256"}') + "." + b64(payload_json())
    secret = public_pem(keys.rsa).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    raises(rs_verifier(keys), f"{signing_input}.{b64(signature)}", TokenInvalid)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b'{"alg":"none"}', id="none"),
        pytest.param(b'{"alg":"hs256"}', id="lowercase"),
        pytest.param(b'{"typ":"JWT"}', id="missing"),
        pytest.param(b'{"alg":["HS256"]}', id="list"),
        pytest.param(b'{"alg":null}', id="null"),
    ],
)
def test_bad_alg_header_is_rejected(header: bytes) -> None:
    raises(verifier(), hs_raw(header, payload_json()), TokenInvalid)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS512"])
def test_unsecured_jws_is_well_formed_and_refused_for_its_algorithm(alg: str) -> None:
    """``header.payload.`` (RFC 7515 appendix A.5) is a compact JWS: 4401, never 4400."""
    token = f"{b64(json.dumps({'alg': alg}).encode())}.{b64(payload_json())}."
    with pytest.raises(TokenInvalid, match="algorithm not allowed"):
        verifier().verify(token)


@pytest.mark.parametrize("algorithm", HMAC_ALGORITHMS + ASYMMETRIC_ALGORITHMS)
def test_empty_signature_with_an_allowed_algorithm_is_a_bad_signature(
    keys: Keys, algorithm: str
) -> None:
    if algorithm in HMAC_ALGORITHMS:
        key, checker = HS_KEY, verifier(ALGORITHMS=[algorithm])
    else:
        key = keys.for_algorithm(algorithm)
        checker = verifier(ALGORITHMS=[algorithm], VERIFYING_KEY=public_pem(key))
    signed = jwt.encode(claims_for(), key, algorithm)
    stripped = signed[: signed.rindex(".") + 1]
    with pytest.raises(TokenInvalid, match="signature verification failed"):
        checker.verify(stripped)


def test_bad_signature_is_rejected() -> None:
    token = hs_token(claims_for())
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    raises(verifier(), tampered, TokenInvalid)


def test_token_signed_with_another_secret_is_rejected() -> None:
    token = hs_token(claims_for(), key="another-secret-that-is-long-enough-for-hs256!!")
    raises(verifier(), token, TokenInvalid)


# --- structure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="one-segment"),
        pytest.param("abc.def", id="two-segments"),
        pytest.param("a.b.c.d.e", id="jwe-five-segments"),
        pytest.param("a..c", id="empty-payload"),
        pytest.param("eyJhbGciOiJub25lIn0..", id="unsecured-empty-payload"),
        pytest.param("a.b.c ", id="trailing-space"),
        pytest.param("a.b.c\n", id="trailing-newline"),
        pytest.param("a+b.c/d.e", id="standard-base64-alphabet"),
    ],
)
def test_non_compact_token_is_malformed(token: str) -> None:
    raises(verifier(), token, TokenMalformed)


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_padded_segment_is_malformed(segment: int) -> None:
    parts = hs_token(claims_for()).split(".")
    parts[segment] += "="
    raises(verifier(), ".".join(parts), TokenMalformed)


def test_token_over_max_token_bytes_is_malformed() -> None:
    token = hs_token(claims_for())
    raises(verifier(MAX_TOKEN_BYTES=len(token) - 1), token, TokenMalformed)


def test_token_of_max_token_bytes_is_accepted() -> None:
    token = hs_token(claims_for())
    assert verifier(MAX_TOKEN_BYTES=len(token)).verify(token)["user_id"] == "1"


def test_segment_that_is_not_base64_is_malformed() -> None:
    _, payload, signature = hs_token(claims_for()).split(".")
    raises(verifier(), f"eyJhbGciOiJIUzI1NiJ9X.{payload}.{signature}", TokenMalformed)


def test_signature_that_is_not_base64_is_malformed() -> None:
    head, payload, _ = hs_token(claims_for()).split(".")
    raises(verifier(), f"{head}.{payload}.AAAAA", TokenMalformed)


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
def test_non_canonical_base64url_is_malformed(segment: int) -> None:
    # A 17-byte header and a 32-byte HMAC leave unused bits in their last character.
    token = hs_raw(b'{"alg": "HS256"} ', payload_json(pad="x"))
    parts = token.split(".")
    assert len(parts[segment]) % 4 in (2, 3)
    verifier().verify(token)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(parts[segment][-1])
    # Setting the lowest unused bit keeps the decoded bytes, so only the encoding is wrong.
    parts[segment] = parts[segment][:-1] + alphabet[last | 1]
    assert base64.urlsafe_b64decode(parts[segment] + "==") == base64.urlsafe_b64decode(
        token.split(".")[segment] + "=="
    )
    raises(verifier(), ".".join(parts), TokenMalformed)


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        pytest.param(b'{"alg":"HS256","alg":"HS256"}', payload_json(), id="header-duplicate"),
        pytest.param(HS_HEADER, payload_with('"user_id":"2"'), id="payload-duplicate"),
        pytest.param(HS_HEADER, payload_with('"x":{"a":1,"a":2}'), id="nested-payload-duplicate"),
        pytest.param(HS_HEADER, payload_json().decode().encode("utf-16"), id="utf16-payload"),
        pytest.param(HS_HEADER.decode().encode("utf-16-le"), payload_json(), id="utf16-header"),
        pytest.param(HS_HEADER, b"\xef\xbb\xbf" + payload_json(), id="utf8-bom-payload"),
        pytest.param(b"\xef\xbb\xbf" + HS_HEADER, payload_json(), id="utf8-bom-header"),
        pytest.param(HS_HEADER, payload_json() + b"\xff", id="invalid-utf8"),
        pytest.param(HS_HEADER, payload_with('"x":NaN'), id="nan"),
        pytest.param(HS_HEADER, payload_with('"x":Infinity'), id="infinity"),
        pytest.param(HS_HEADER, payload_with('"x":-Infinity'), id="minus-infinity"),
        pytest.param(HS_HEADER, payload_json() + b"{}", id="trailing-data"),
        pytest.param(HS_HEADER, b"[" * 5000 + b"]" * 5000, id="deep-nesting"),
        pytest.param(HS_HEADER, b"[]", id="payload-array"),
        pytest.param(HS_HEADER, b'"claims"', id="payload-string"),
        pytest.param(HS_HEADER, b"1", id="payload-number"),
        pytest.param(HS_HEADER, b"null", id="payload-null"),
        pytest.param(b'["HS256"]', payload_json(), id="header-array"),
        pytest.param(b"true", payload_json(), id="header-bool"),
        pytest.param(b"not json", payload_json(), id="header-not-json"),
    ],
)
def test_bad_json_is_malformed(header: bytes, payload: bytes) -> None:
    raises(verifier(MAX_TOKEN_BYTES=20000), hs_raw(header, payload), TokenMalformed)


def arrays(depth: int) -> str:
    """JSON arrays nested ``depth`` deep."""
    return "[" * depth + "]" * depth


# The top-level object is level 1, so a member nests MAX_JSON_DEPTH - 1 arrays at most.
@pytest.mark.parametrize("part", ["header", "payload"])
def test_json_nested_to_the_bound_is_accepted(part: str) -> None:
    member = f'"x":{arrays(MAX_JSON_DEPTH - 1)}'
    if part == "header":
        token = hs_raw(b'{"alg":"HS256",' + member.encode() + b"}", payload_json())
    else:
        token = hs_raw(HS_HEADER, payload_with(member))
    assert verifier().verify(token)["user_id"] == claims_for()["user_id"]


@pytest.mark.parametrize("part", ["header", "payload"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 1000, 100_000])
def test_json_nested_past_the_bound_is_malformed_on_every_python(part: str, depth: int) -> None:
    # Correctly signed: only the nesting is wrong. Python 3.12+ would parse all of these.
    member = f'"x":{arrays(depth)}'
    if part == "header":
        token = hs_raw(b'{"alg":"HS256",' + member.encode() + b"}", payload_json())
    else:
        token = hs_raw(HS_HEADER, payload_with(member))
    with pytest.raises(TokenMalformed, match="deeper than 32 levels"):
        verifier(MAX_TOKEN_BYTES=300_000).verify(token)


@pytest.mark.parametrize(
    "member",
    [
        pytest.param('"x":"' + "[" * 100 + '"', id="brackets-in-a-string"),
        pytest.param('"x":"\\"' + "{" * 100 + '"', id="escaped-quote-then-brackets"),
        pytest.param('"x":[' + "{}," * 100 + "{}]", id="many-shallow-objects"),
    ],
)
def test_brackets_that_do_not_nest_are_not_counted(member: str) -> None:
    token = hs_raw(HS_HEADER, payload_with(member))
    assert verifier().verify(token)["x"]


def test_stray_backslash_among_many_shallow_brackets_is_malformed() -> None:
    # More brackets than the bound, none deep: the scan reaches the backslash outside a string.
    token = hs_raw(HS_HEADER, payload_with('"x":[' + "[]," * 40 + "[]]\\"))
    with pytest.raises(TokenMalformed, match="not UTF-8 JSON"):
        verifier().verify(token)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param('"crit":["exp"]', id="crit"),
        pytest.param('"crit":[]', id="crit-empty"),
        pytest.param('"b64":false', id="b64-false"),
        pytest.param('"b64":true', id="b64-true"),
        pytest.param('"zip":"DEF"', id="zip"),
    ],
)
def test_unsupported_header_parameter_is_malformed(extra: str) -> None:
    header = b'{"alg":"HS256",' + extra.encode() + b"}"
    raises(verifier(), hs_raw(header, payload_json()), TokenMalformed)


@pytest.mark.parametrize("kid", [1, ["one"], {"k": "one"}, True])
def test_non_string_kid_is_malformed(kid: Any) -> None:
    raises(verifier(), hs_with_header(kid=kid), TokenMalformed)


def test_string_kid_is_ignored_for_hmac() -> None:
    assert verifier().verify(hs_token(claims_for(), headers={"kid": "k1"}))["user_id"] == "1"


def test_key_hints_in_header_do_not_select_a_key(keys: Keys) -> None:
    attacker = keys.rsa_other
    hints = {
        "jku": "https://evil.example/jwks",
        "x5u": "https://evil.example/cert",
        "jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key())),
    }
    raises(rs_verifier(keys), rs_token(attacker, claims_for(), headers=hints), TokenInvalid)


def test_key_hints_in_header_are_ignored(keys: Keys) -> None:
    hints = {"jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"}
    assert rs_verifier(keys).verify(rs_token(keys.rsa, claims_for(), headers=hints))


# --- typ header --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typ", ["JWT", "jwt", "at+jwt", "AT+JWT", "application/jwt", "application/at+jwt"]
)
def test_accepted_typ(typ: str) -> None:
    assert verifier().verify(hs_with_header(typ=typ))["user_id"] == "1"


@pytest.mark.parametrize(
    "typ", ["JOSE", "JWE", "dpop+jwt", "secevent+jwt", "", 1, ["JWT"]], ids=repr
)
def test_other_typ_is_invalid(typ: Any) -> None:
    raises(verifier(), hs_with_header(typ=typ), TokenInvalid)


def test_token_without_typ_is_accepted() -> None:
    token = hs_raw(b'{"alg":"HS256"}', payload_json())
    assert verifier().verify(token)["user_id"] == "1"


# --- time claims -------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("true", id="bool"),
        pytest.param("false", id="false"),
        pytest.param('"9999999999"', id="str"),
        pytest.param("1e400", id="inf"),
        pytest.param("-1e400", id="minus-inf"),
        pytest.param("null", id="null"),
        pytest.param("[9999999999]", id="list"),
    ],
)
def test_time_claim_that_is_not_a_finite_number_is_invalid(claim: str, raw: str) -> None:
    payload = json.loads(payload_json())
    payload.pop(claim, None)
    body = json.dumps(payload, separators=(",", ":"))[:-1] + f',"{claim}":{raw}}}'
    raises(verifier(), hs_raw(HS_HEADER, body.encode()), TokenInvalid)


def test_float_time_claims_are_accepted() -> None:
    now = time.time()
    claims = claims_for(exp=now + 60.5, iat=now - 0.5, nbf=now - 1.5)
    assert verifier().verify(hs_token(claims)) == claims


def test_expired_token() -> None:
    now = int(time.time())
    raises(verifier(), hs_token(claims_for(exp=now - 10, iat=now - 100)), TokenExpired)


def test_expired_error_carries_the_expired_close_code() -> None:
    now = int(time.time())
    with pytest.raises(TokenExpired) as info:
        verifier().verify(hs_token(claims_for(exp=now - 10, iat=now - 100)))
    assert info.value.close_code == CloseCode.TOKEN_EXPIRED


def test_expired_token_within_leeway_is_accepted() -> None:
    now = int(time.time())
    token = hs_token(claims_for(exp=now - 10, iat=now - 100))
    assert verifier(LEEWAY=30).verify(token)["user_id"] == "1"


def test_leeway_as_timedelta() -> None:
    now = int(time.time())
    token = hs_token(claims_for(exp=now - 10, iat=now - 100))
    assert verifier(LEEWAY=timedelta(seconds=30)).verify(token)["user_id"] == "1"


def test_expired_token_beyond_leeway() -> None:
    now = int(time.time())
    token = hs_token(claims_for(exp=now - 60, iat=now - 100))
    raises(verifier(LEEWAY=30), token, TokenExpired)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_future_nbf_or_iat_is_invalid(claim: str) -> None:
    token = hs_token(claims_for(**{claim: int(time.time()) + 120}))
    raises(verifier(), token, TokenInvalid)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_future_nbf_or_iat_within_leeway_is_accepted(claim: str) -> None:
    token = hs_token(claims_for(**{claim: int(time.time()) + 20}))
    assert verifier(LEEWAY=60).verify(token)["user_id"] == "1"


def test_past_nbf_is_accepted() -> None:
    token = hs_token(claims_for(nbf=int(time.time()) - 5))
    assert verifier().verify(token)["user_id"] == "1"


# --- audience and issuer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "claim"),
    [
        pytest.param("api", "api", id="str-str"),
        pytest.param("api", ["web", "api"], id="str-list"),
        pytest.param(["api", "web"], "web", id="list-str"),
        pytest.param(["api", "web"], ["other", "api"], id="list-list"),
    ],
)
def test_matching_audience_is_accepted(configured: Any, claim: Any) -> None:
    token = hs_token(claims_for(aud=claim))
    assert verifier(AUDIENCE=configured).verify(token)["aud"] == claim


@pytest.mark.parametrize(
    ("configured", "claim"),
    [
        pytest.param("api", "web", id="str-mismatch"),
        pytest.param(["api", "web"], ["other"], id="list-mismatch"),
        pytest.param("api", ..., id="missing"),
        pytest.param(None, "api", id="present-but-not-configured"),
    ],
)
def test_wrong_audience_is_invalid(configured: Any, claim: Any) -> None:
    raises(verifier(AUDIENCE=configured), hs_token(claims_for(aud=claim)), TokenInvalid)


@pytest.mark.parametrize(
    ("configured", "claim"),
    [
        pytest.param("https://idp.example", "https://idp.example", id="str"),
        pytest.param(
            ["https://a.example", "https://idp.example"], "https://idp.example", id="list"
        ),
    ],
)
def test_matching_issuer_is_accepted(configured: Any, claim: str) -> None:
    token = hs_token(claims_for(iss=claim))
    assert verifier(ISSUER=configured).verify(token)["iss"] == claim


@pytest.mark.parametrize(
    ("configured", "claim"),
    [
        pytest.param("https://idp.example", "https://evil.example", id="str-mismatch"),
        pytest.param(["https://a.example"], "https://evil.example", id="list-mismatch"),
        pytest.param("https://idp.example", ..., id="missing"),
        pytest.param("https://idp.example", ["https://idp.example"], id="list-claim"),
    ],
)
def test_wrong_issuer_is_invalid(configured: Any, claim: Any) -> None:
    raises(verifier(ISSUER=configured), hs_with_claims(claims_for(iss=claim)), TokenInvalid)


# --- required claims, token type, lifetime, jti ------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "user_id", "token_type"])
def test_default_required_claim_missing_is_invalid(claim: str) -> None:
    raises(verifier(), hs_token(without(claim)), TokenInvalid)


def test_jti_is_not_required_by_default() -> None:
    assert verifier().verify(hs_token(claims_for(jti=...)))["user_id"] == "1"


def test_extra_required_claim_missing_is_invalid() -> None:
    checker = verifier(REQUIRED_CLAIMS=["exp", "iat", "sub"])
    raises(checker, hs_token(claims_for()), TokenInvalid)


def test_extra_required_claim_present_is_accepted() -> None:
    checker = verifier(REQUIRED_CLAIMS=["exp", "iat", "sub"])
    assert checker.verify(hs_token(claims_for(sub="x")))["sub"] == "x"


def test_custom_user_id_claim_is_required() -> None:
    checker = verifier(USER_ID_CLAIM="sub")
    raises(checker, hs_token(claims_for()), TokenInvalid)
    assert checker.rules.required_claims == ("exp", "iat", "sub", "token_type")


def test_user_id_and_type_claims_are_required_even_when_required_claims_is_empty() -> None:
    checker = verifier(REQUIRED_CLAIMS=[])
    assert checker.rules.required_claims == ("user_id", "token_type")
    raises(checker, hs_token(without("user_id")), TokenInvalid)


def test_require_jti_rejects_a_token_without_jti() -> None:
    raises(verifier(require_jti=True), hs_token(claims_for(jti=...)), TokenInvalid)


def test_require_jti_accepts_a_token_with_jti() -> None:
    claims = claims_for()
    assert verifier(require_jti=True).verify(hs_token(claims))["jti"] == claims["jti"]


@pytest.mark.parametrize(
    "token_type",
    [
        pytest.param("refresh", id="refresh"),
        pytest.param("Access", id="case"),
        pytest.param(["access"], id="list"),
        pytest.param(None, id="null"),
    ],
)
def test_wrong_token_type_is_invalid(token_type: Any) -> None:
    raises(verifier(), hs_token(claims_for(token_type=token_type)), TokenInvalid)


def test_token_type_among_several_is_accepted() -> None:
    checker = verifier(TOKEN_TYPES=["access", "websocket"])
    assert checker.verify(hs_token(claims_for(token_type="websocket")))["user_id"] == "1"


def test_token_types_as_a_string() -> None:
    checker = verifier(TOKEN_TYPES="websocket")
    assert checker.verify(hs_token(claims_for(token_type="websocket")))["user_id"] == "1"


def test_custom_token_type_claim() -> None:
    checker = verifier(TOKEN_TYPE_CLAIM="kind")
    assert checker.verify(hs_token(claims_for(kind="access")))["kind"] == "access"
    raises(checker, hs_token(claims_for(kind="refresh")), TokenInvalid)


def test_token_type_claim_none_disables_the_type_check() -> None:
    checker = verifier(TOKEN_TYPE_CLAIM=None)
    assert checker.rules.required_claims == ("exp", "iat", "user_id")
    assert checker.verify(hs_token(claims_for(token_type=...)))["user_id"] == "1"
    assert checker.verify(hs_token(claims_for(token_type="refresh")))["user_id"] == "1"


@pytest.mark.parametrize(
    "cap", [pytest.param(300, id="seconds"), pytest.param(timedelta(minutes=5), id="timedelta")]
)
def test_lifetime_at_the_cap_is_accepted(cap: Any) -> None:
    now = int(time.time())
    token = hs_token(claims_for(iat=now, exp=now + 300))
    assert verifier(MAX_TOKEN_LIFETIME=cap).verify(token)["user_id"] == "1"


def test_lifetime_over_the_cap_is_invalid() -> None:
    now = int(time.time())
    raises(
        verifier(MAX_TOKEN_LIFETIME=300), hs_token(claims_for(iat=now, exp=now + 301)), TokenInvalid
    )


def test_lifetime_cap_without_iat_is_invalid() -> None:
    checker = verifier(MAX_TOKEN_LIFETIME=300, REQUIRED_CLAIMS=["exp"])
    raises(checker, hs_token(claims_for(iat=...)), TokenInvalid)


def test_lifetime_cap_without_exp_is_invalid() -> None:
    # A token that never expires has an unbounded lifetime: it exceeds any cap.
    checker = verifier(MAX_TOKEN_LIFETIME=300, REQUIRED_CLAIMS=["iat"])
    raises(checker, hs_token(claims_for(exp=...)), TokenInvalid)


def test_token_without_exp_is_accepted_when_exp_is_not_required() -> None:
    checker = verifier(REQUIRED_CLAIMS=["iat"])
    assert checker.verify(hs_token(claims_for(exp=...)))["user_id"] == "1"


def test_checked_headers_are_remembered_up_to_a_bound() -> None:
    checker = verifier()
    for number in range(100):
        checker.verify(hs_with_header(kid=f"key-{number}"))
    assert len(checker._headers) == 64


def test_refused_headers_are_not_remembered() -> None:
    checker = verifier()
    for header in (b'{"alg":"HS512"}', b'{"alg":"HS256","crit":["x"]}', b'{"alg":"HS256","kid":1}'):
        with pytest.raises(AuthenticationFailed):
            checker.verify(hs_raw(header, payload_json()))
    assert checker._headers == {}


def test_a_remembered_header_does_not_vouch_for_the_rest_of_a_token() -> None:
    checker = verifier()
    token = hs_token(claims_for())
    checker.verify(token)
    head, payload, signature = token.split(".")
    assert head in checker._headers
    raises(checker, f"{head}.{payload}.{signature[:-2]}AA", TokenInvalid)
    raises(checker, f"{head}.{b64(b'[]')}.{signature}", TokenMalformed)


# --- nothing of a token rides along on the exception --------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(hs_raw(HS_HEADER, b"\xff\xfe-secret-payload"), id="not-utf8"),
        pytest.param(hs_raw(HS_HEADER, b'{"secret-payload": '), id="not-json"),
        pytest.param(hs_raw(b'{"alg": "HS256", "secret-header"', b"{}"), id="header-not-json"),
        pytest.param("eyJhb.e30." + "A" * 43, id="base64-length-4n+1"),
    ],
)
def test_a_malformed_token_raises_without_the_decoders_exception(token: str) -> None:
    # Error trackers record an exception's chain: UnicodeDecodeError.object and
    # JSONDecodeError.doc hold the decoded token.
    with pytest.raises(TokenMalformed) as info:
        verifier().verify(token)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_repr_of_the_verification_rules_shows_no_hmac_key() -> None:
    checker = verifier(SIGNING_KEY="s3cret-" * 8)
    assert checker.rules.hmac_secret == b"s3cret-" * 8
    assert "s3cret" not in repr(checker.rules)
    assert "s3cret" not in repr(checker)
