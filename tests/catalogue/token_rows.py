"""The catalogue's token rows as data: each a hostile (or control) token, its settings and its
expected close; run by ``test_rows.py``."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model
from django.db import connection
from jwt.algorithms import RSAAlgorithm

from tests.catalogue.kit import (
    ACCEPT,
    ATTACKER_SECRET,
    AUD,
    BASE64URL,
    EXPIRED,
    HS_HEADER,
    INVALID,
    ISS,
    MALFORMED,
    MISSING,
    UNAVAILABLE,
    USER,
    Kit,
    Row,
    attacker_jwk,
    b64u,
    compact_json,
    high_s,
    inserted,
    now,
    signature_of,
    with_signature,
)
from tests.harness import (
    Keys,
    crashing_resolver,
    never_revoked,
    public_pem,
)

SPKI = PublicFormat.SubjectPublicKeyInfo


OPENSSH = PublicFormat.OpenSSH


AUD_ISS = {"AUDIENCE": AUD, "ISSUER": ISS}


LIFETIME_CAP = {"MAX_TOKEN_LIFETIME": 3600}


def der_signature(token: str) -> str:
    """An ES256 token whose ``R || S`` signature is re-encoded as DER (S19)."""
    signature = signature_of(token)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return with_signature(token, b64u(encode_dss_signature(r, s)))


def self_signed_certificate(private_key: Any) -> x509.Certificate:
    """A one-day self-signed certificate for ``private_key``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.test")])
    issued = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(1)
        .not_valid_before(issued - datetime.timedelta(days=1))
        .not_valid_after(issued + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )


def public_bytes(private_key: Any, encoding: Any, public_format: Any) -> bytes:
    """The public half of ``private_key`` in one serialization."""
    return private_key.public_key().public_bytes(encoding, public_format)


def attacker_x5c(keys: Keys) -> list[str]:
    """An ``x5c`` chain holding the attacker's self-signed certificate."""
    certificate = self_signed_certificate(keys.rsa_other).public_bytes(Encoding.DER)
    return [base64.b64encode(certificate).decode()]


#: The server's public keys, serialised every way an HMAC secret could be made of them (A05).
PUBLIC_KEY_SECRETS: list[tuple[str, str, Callable[[Keys], bytes]]] = [
    ("pkcs1-pem", "RS256", lambda keys: public_bytes(keys.rsa, Encoding.PEM, PublicFormat.PKCS1)),
    ("der-spki", "RS256", lambda keys: public_bytes(keys.rsa, Encoding.DER, SPKI)),
    ("openssh-rsa", "RS256", lambda keys: public_bytes(keys.rsa, Encoding.OpenSSH, OPENSSH)),
    (
        "x509-certificate",
        "RS256",
        lambda keys: self_signed_certificate(keys.rsa).public_bytes(Encoding.PEM),
    ),
    ("jwk-json", "RS256", lambda keys: RSAAlgorithm.to_jwk(keys.rsa.public_key()).encode()),
    ("ec-pem", "ES256", lambda keys: public_pem(keys.p256).encode()),
    ("ed25519-pem", "EdDSA", lambda keys: public_pem(keys.ed25519).encode()),
    (
        "openssh-ed25519",
        "EdDSA",
        lambda keys: public_bytes(keys.ed25519, Encoding.OpenSSH, OPENSSH),
    ),
]


def truncated_signature(kit: Kit, *, canonical: bool) -> str:
    """A token whose signature lost its last character (S03), chosen so that the remaining
    42 characters are (or are not) the canonical base64url encoding of 31 bytes."""
    for _ in range(500):
        truncated = kit.hs()[:-1]
        leftover_bits = BASE64URL.index(truncated[-1]) & 0b1111
        if (leftover_bits == 0) == canonical:
            return truncated
    raise AssertionError("no suitable signature found")


def standard_alphabet(kit: Kit) -> str:
    """A token whose signature is re-encoded in the standard base64 alphabet (S12)."""
    for _ in range(500):
        token = kit.hs()
        signature = token.split(".")[2]
        if "-" in signature or "_" in signature:
            return with_signature(token, signature.replace("-", "+").replace("_", "/"))
    raise AssertionError("no signature with - or _ found")


def non_canonical_last_character(kit: Kit) -> str:
    """A token whose signature's last character has its unused low bits set (S13)."""
    token = kit.hs()
    signature = token.split(".")[2]
    flipped = BASE64URL[BASE64URL.index(signature[-1]) ^ 1]
    return with_signature(token, signature[:-1] + flipped)


def padded(token: str) -> str:
    """Every segment padded with ``=`` to a multiple of four (S10)."""
    return ".".join(part + "=" * (-len(part) % 4) for part in token.split("."))


def line_broken(token: str) -> str:
    """``token`` with a line break inside its payload segment (S14)."""
    return inserted(token, token.index(".") + 6, "\n")


def halved(token: str) -> str:
    """The first half of ``token``."""
    return token[: len(token) // 2]


def jwe(header: dict[str, Any], encrypted_key: str) -> str:
    """A five-segment JWE-shaped token (S04)."""
    return ".".join([b64u(compact_json(header)), encrypted_key, "AAAA", "AAAA", "AAAA"])


def json_serialization(token: str) -> str:
    """The JWS JSON serialization of a compact token (S24)."""
    protected, payload, signature = token.split(".")
    return json.dumps({"protected": protected, "payload": payload, "signature": signature})


def cesu_claims(kit: Kit) -> bytes:
    """Claims whose user id is a lone surrogate written as raw (CESU-8) bytes (S16)."""
    text = json.dumps(kit.claims(user_id="\ud800"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def modulus(keys: Keys) -> bytes:
    """The server's RSA modulus as a 256-byte string (S22)."""
    return keys.rsa.public_key().public_numbers().n.to_bytes(256, "big")


def nested(depth: int) -> bytes:
    """JSON arrays nested ``depth`` deep."""
    return b"[" * depth + b"]" * depth


def arabic_indic(number: int) -> str:
    """``number`` written with Arabic-Indic digits (which ``int()`` accepts)."""
    return "".join(chr(0x660 + int(digit)) for digit in str(number))


async def broken_revocation_check(claims: Mapping[str, Any]) -> bool:
    """A revocation hook whose backend is down."""
    raise ConnectionError("revocation backend unreachable")


def missing_table_resolver(claims: Mapping[str, Any], scope: Mapping[str, Any]) -> Any:
    """A synchronous resolver whose query really fails in the database (U10)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM channels_jwt_advisory_no_such_table")
    return None


def orm_resolver(claims: Mapping[str, Any], scope: Mapping[str, Any]) -> Any:
    """A synchronous resolver using the ORM: must run off the event loop (U12)."""
    return get_user_model().objects.get(pk=int(claims["user_id"]))


TRAVERSAL = "../../../../dev/null"


TEN_YEARS = 10 * 365 * 86400


LEEWAY_10 = {"LEEWAY": 10}


REVOCATION = {"REVOCATION_CHECK": never_revoked}


TOKEN_ROWS: list[Row] = [
    # A: algorithm and key confusion
    Row("A01-alg-none-empty-signature", lambda k: k.unsecured({"alg": "none"}), INVALID),
    *[
        Row(f"A02-alg-{alg}-empty-signature", lambda k, a=alg: k.unsecured({"alg": a}), INVALID)
        for alg in ("None", "NONE", "nOnE")
    ],
    *[
        Row(f"A02-alg-{alg}-valid-mac", lambda k, a=alg: k.hs(header={"alg": a}), INVALID)
        for alg in ("None", "NONE", "nOnE")
    ],
    Row("A03-alg-none-junk-signature", lambda k: k.unsecured({"alg": "none"}, "AAAA"), INVALID),
    Row("A03-alg-none-valid-mac", lambda k: k.hs(header={"alg": "none"}), INVALID),
    Row(
        "A04-hs256-keyed-with-rsa-public-pem",
        lambda k: k.hs(key=public_pem(k.keys.rsa).encode()),
        INVALID,
        "RS256",
    ),
    *[
        Row(
            f"A05-hs256-keyed-with-{name}",
            lambda k, s=secret: k.hs(key=s(k.keys)),
            INVALID,
            profile,
        )
        for name, profile, secret in PUBLIC_KEY_SECRETS
    ],
    Row(
        "A06-hs512-valid-mac-under-hs256",
        lambda k: k.hs(header={"alg": "HS512"}, digest=hashlib.sha512),
        INVALID,
    ),
    *[
        Row(
            f"A06-{alg.lower()}-valid-signature-under-{profile.lower()}",
            lambda k, a=alg: k.signed(a),
            INVALID,
            profile,
        )
        for alg, profile in (("PS256", "RS256"), ("RS512", "RS256"), ("ES384", "ES256"))
    ],
    *[
        Row(f"A07-alg-{label}", lambda k, a=alg: k.hs(header={"alg": a}), INVALID)
        for label, alg in (
            ("lowercase", "hs256"),
            ("trailing-space", "HS256 "),
            ("hyphen", "HS-256"),
            ("nul", "HS256\x00"),
        )
    ],
    Row("A08-alg-missing", lambda k: k.hs(header={"typ": "JWT"}), INVALID),
    Row("A08-alg-empty", lambda k: k.hs(header={"alg": ""}), INVALID),
    Row("A08-alg-null", lambda k: k.hs(header={"alg": None}), INVALID),
    *[
        Row(f"A09-alg-{label}", lambda k, a=alg: k.hs(header={"alg": a}), INVALID)
        for label, alg in (
            ("list", ["HS256"]),
            ("object", {"a": 1}),
            ("number", 256),
            ("bool", True),
        )
    ],
    Row(
        "A10-rs256-header-pss-signature",
        lambda k: k.signed("PS256", header={"alg": "RS256"}),
        INVALID,
        "RS256",
    ),
    Row(
        "A10-ps256-header-pkcs1-signature",
        lambda k: k.signed("RS256", header={"alg": "PS256"}),
        INVALID,
        "PS256",
    ),
    Row("A11-attacker-hmac-key", lambda k: k.hs(key=ATTACKER_SECRET), INVALID),
    Row("A11-attacker-rsa-key", lambda k: k.rs256(key=k.keys.rsa_other), INVALID, "RS256"),
    Row(
        "A11-attacker-p256-key",
        lambda k: k.signed("ES256", key=ec.generate_private_key(ec.SECP256R1())),
        INVALID,
        "ES256",
    ),
    Row(
        "A11-attacker-ed25519-key",
        lambda k: k.signed("EdDSA", key=ed25519.Ed25519PrivateKey.generate()),
        INVALID,
        "EdDSA",
    ),
    # H: header parameters (profile "RS256-kid" configures keys as a {kid: pem} map)
    Row("H01-kid-path-traversal-single-key", lambda k: k.header(kid=TRAVERSAL), ACCEPT, queries=1),
    Row(
        "H01-kid-path-traversal-attacker-mac",
        lambda k: k.hs(header={**HS_HEADER, "kid": TRAVERSAL}, key=ATTACKER_SECRET),
        INVALID,
    ),
    Row("H01-kid-path-traversal-kid-map", lambda k: k.rs256(kid=TRAVERSAL), INVALID, "RS256-kid"),
    Row("H02-kid-sql-or-kid-map", lambda k: k.rs256(kid="' OR '1'='1' --"), INVALID, "RS256-kid"),
    Row(
        "H02-kid-sql-union-kid-map",
        lambda k: k.rs256(kid="x' UNION SELECT key FROM keys--"),
        INVALID,
        "RS256-kid",
    ),
    Row("H03-kid-number", lambda k: k.header(kid=123), MALFORMED),
    Row("H03-kid-list", lambda k: k.header(kid=["a"]), MALFORMED),
    Row("H03-kid-null", lambda k: k.header(kid=None), MALFORMED),
    Row("H03-kid-null-kid-map", lambda k: k.rs256(kid=None), MALFORMED, "RS256-kid"),
    Row("H04-kid-10kb", lambda k: k.rs256(kid="x" * 10_000), MALFORMED, "RS256-kid"),
    Row("H04-kid-nul-kid-map", lambda k: k.rs256(kid="\x00"), INVALID, "RS256-kid"),
    Row(
        "H04-kid-terminal-escape-kid-map",
        lambda k: k.rs256(kid="\x1b[31mk1\n"),
        INVALID,
        "RS256-kid",
    ),
    Row(
        "H05-embedded-attacker-jwk",
        lambda k: k.rs256(key=k.keys.rsa_other, jwk=attacker_jwk(k.keys)),
        INVALID,
        "RS256",
    ),
    Row(
        "H05-embedded-attacker-oct-jwk",
        lambda k: k.hs(
            header={**HS_HEADER, "jwk": {"kty": "oct", "k": b64u(ATTACKER_SECRET)}},
            key=ATTACKER_SECRET,
        ),
        INVALID,
    ),
    Row(
        "H07-x5c-attacker-certificate",
        lambda k: k.rs256(key=k.keys.rsa_other, x5c=attacker_x5c(k.keys)),
        INVALID,
        "RS256",
    ),
    Row("H08-crit-unknown-extension", lambda k: k.header(crit=["foo"], foo=1), MALFORMED),
    Row("H08-crit-empty-list", lambda k: k.header(crit=[]), MALFORMED),
    Row("H08-crit-string", lambda k: k.header(crit="foo", foo=1), MALFORMED),
    Row("H08-crit-registered-name", lambda k: k.header(crit=["exp"]), MALFORMED),
    Row("H08-crit-b64-without-b64", lambda k: k.header(crit=["b64"]), MALFORMED),
    Row(
        "H09-b64-false-detached-payload",
        lambda k: ".".join(
            [
                b64u(compact_json({"alg": "HS256", "b64": False, "crit": ["b64"]})),
                "A" * 1000,
                "AAAA",
            ]
        ),
        MALFORMED,
    ),
    Row("H09-b64-false-without-crit", lambda k: k.header(b64=False), MALFORMED),
    Row("H10-typ-refresh-jwt", lambda k: k.header(typ="refresh+jwt"), INVALID),
    Row("H10-typ-not-a-string", lambda k: k.header(typ=123), INVALID),
    Row("H10-typ-absent", lambda k: k.hs(header={"alg": "HS256"}), ACCEPT, queries=1),
    Row("H10-typ-at-jwt", lambda k: k.header(typ="at+jwt"), ACCEPT, queries=1),
    Row(
        "H11-cty-jwt-nested-token",
        lambda k: k.raw(compact_json({"alg": "HS256", "cty": "JWT"}), k.hs().encode()),
        MALFORMED,
    ),
    Row("H12-zip-deflate", lambda k: k.header(zip="DEF"), MALFORMED),
    Row(
        "H13-duplicate-alg-none-then-hs256",
        lambda k: k.raw(b'{"alg":"none","alg":"HS256"}'),
        MALFORMED,
    ),
    Row(
        "H13-duplicate-alg-hs256-then-none",
        lambda k: k.raw(b'{"alg":"HS256","alg":"none"}'),
        MALFORMED,
    ),
    Row("H14-header-utf16", lambda k: k.raw('{"alg":"HS256"}'.encode("utf-16")), MALFORMED),
    Row("H14-header-utf32", lambda k: k.raw('{"alg":"HS256"}'.encode("utf-32")), MALFORMED),
    Row("H14-header-utf8-bom", lambda k: k.raw(b'\xef\xbb\xbf{"alg":"HS256"}'), MALFORMED),
    Row("H15-header-array", lambda k: k.raw(b'["HS256"]'), MALFORMED),
    Row("H15-header-string", lambda k: k.raw(b'"x"'), MALFORMED),
    Row("H15-header-null", lambda k: k.raw(b"null"), MALFORMED),
    # T: time claims
    Row("T01-expired-by-1s", lambda k: k.token(exp=now() - 1), EXPIRED),
    Row(
        "T02-expired-1s-leeway-10",
        lambda k: k.token(exp=now() - 1),
        ACCEPT,
        settings=LEEWAY_10,
        queries=1,
    ),
    Row(
        "T02-expired-11s-leeway-10", lambda k: k.token(exp=now() - 11), EXPIRED, settings=LEEWAY_10
    ),
    Row("T03-exp-equals-now", lambda k: k.token(exp=now()), EXPIRED),
    Row("T04-nbf-60s-ahead", lambda k: k.token(nbf=now() + 60), INVALID),
    Row(
        "T04-nbf-60s-ahead-leeway-60",
        lambda k: k.token(nbf=now() + 60),
        ACCEPT,
        settings={"LEEWAY": 60},
        queries=1,
    ),
    Row("T05-iat-1h-ahead", lambda k: k.token(iat=now() + 3600), INVALID),
    Row("T05-iat-far-future", lambda k: k.token(iat=now() + 10**9), INVALID),
    Row("T06-exp-missing", lambda k: k.token(exp=...), INVALID),
    Row("T07-exp-null", lambda k: k.token(exp=None), INVALID),
    Row("T08-exp-numeric-string", lambda k: k.token(exp=str(now() + 300)), INVALID),
    Row("T08-exp-padded-numeric-string", lambda k: k.token(exp=f" {now() + 300} "), INVALID),
    Row("T08-exp-arabic-indic-digits", lambda k: k.token(exp=arabic_indic(now() + 300)), INVALID),
    Row("T08-exp-underscored-digits", lambda k: k.token(exp="9_999_999_999"), INVALID),
    *[
        Row(f"T09-exp-string-{label}", lambda k, v=value: k.token(exp=v), INVALID)
        for label, value in (("abc", "abc"), ("exponent", "1e10"), ("empty", ""))
    ],
    Row("T10-exp-float-future", lambda k: k.token(exp=now() + 300.5), ACCEPT, queries=1),
    Row("T10-exp-float-past", lambda k: k.token(exp=now() - 0.5), EXPIRED),
    Row("T11-exp-1e100", lambda k: k.token(exp=10**100), INVALID),
    Row("T11-exp-after-year-9999", lambda k: k.token(exp=253402300800), INVALID),
    Row("T11-exp-4000-digits", lambda k: k.exp_literal(b"9" * 4000), INVALID),
    Row(
        "T11-exp-10-years-lifetime-capped",
        lambda k: k.token(exp=now() + TEN_YEARS),
        INVALID,
        settings=LIFETIME_CAP,
    ),
    Row(
        "T11-exp-10-years-accepted-without-cap",
        lambda k: k.token(exp=now() + TEN_YEARS),
        ACCEPT,
        queries=1,
    ),
    Row("T12-exp-negative", lambda k: k.token(exp=-1), EXPIRED),
    Row("T12-exp-zero", lambda k: k.token(exp=0), EXPIRED),
    Row("T13-exp-true", lambda k: k.token(exp=True), INVALID),
    Row("T13-exp-false", lambda k: k.token(exp=False), INVALID),
    Row("T13-iat-true", lambda k: k.token(iat=True), INVALID),
    Row("T14-exp-NaN-literal", lambda k: k.exp_literal(b"NaN"), MALFORMED),
    Row("T14-exp-Infinity-literal", lambda k: k.exp_literal(b"Infinity"), MALFORMED),
    Row("T14-exp-minus-Infinity-literal", lambda k: k.exp_literal(b"-Infinity"), MALFORMED),
    Row("T14-exp-1e400-overflows-to-inf", lambda k: k.exp_literal(b"1e400"), INVALID),
    Row("T15-exp-list", lambda k: k.token(exp=[]), INVALID),
    Row("T15-exp-object", lambda k: k.token(exp={}), INVALID),
    Row("T16-exp-5000-digits", lambda k: k.exp_literal(b"9" * 5000), MALFORMED),
    Row("T18-iat-numeric-string", lambda k: k.token(iat=str(now())), INVALID),
    Row("T18-nbf-string", lambda k: k.token(nbf="abc"), INVALID),
    Row("T19-iat-epoch", lambda k: k.token(iat=0), ACCEPT, queries=1),
    Row("T19-iat-epoch-lifetime-capped", lambda k: k.token(iat=0), INVALID, settings=LIFETIME_CAP),
    # C: audience, issuer, type and other claims (AUD_ISS configures AUDIENCE and ISSUER)
    Row("C01-aud-mismatch", lambda k: k.scoped(aud="other"), INVALID, settings=AUD_ISS),
    Row(
        "C02-aud-list-containing-audience",
        lambda k: k.scoped(aud=["other", AUD]),
        ACCEPT,
        settings=AUD_ISS,
        queries=1,
    ),
    Row(
        "C02-aud-list-without-audience",
        lambda k: k.scoped(aud=["other"]),
        INVALID,
        settings=AUD_ISS,
    ),
    Row("C03-aud-case-variant", lambda k: k.scoped(aud="WS-API"), INVALID, settings=AUD_ISS),
    Row("C03-aud-trailing-space", lambda k: k.scoped(aud=AUD + " "), INVALID, settings=AUD_ISS),
    *[
        Row(
            f"C04-aud-{label}-when-configured",
            lambda k, v=value: k.scoped(aud=v),
            INVALID,
            settings=AUD_ISS,
        )
        for label, value in (
            ("missing", ...),
            ("empty-list", []),
            ("empty-string", ""),
            ("null", None),
        )
    ],
    Row("C05-aud-present-none-configured", lambda k: k.token(aud=AUD), INVALID),
    Row("C06-aud-list-of-number", lambda k: k.scoped(aud=[123]), INVALID, settings=AUD_ISS),
    Row("C06-aud-object", lambda k: k.scoped(aud={AUD: 1}), INVALID, settings=AUD_ISS),
    *[
        Row(f"C07-iss-{label}", lambda k, v=value: k.scoped(iss=v), INVALID, settings=AUD_ISS)
        for label, value in (
            ("foreign", "https://evil.test"),
            ("suffixed", ISS + ".evil"),
            ("substring", "issuer.test"),
            ("list", [ISS]),
            ("null", None),
            ("number", 1),
            ("missing", ...),
        )
    ],
    Row(
        "C08-iss-unchecked-without-ISSUER",
        lambda k: k.token(iss="https://evil.test"),
        ACCEPT,
        queries=1,
    ),
    Row("C09-refresh-token", lambda k: k.token(token_type="refresh", exp=now() + 86400), INVALID),
    Row("C09-token-type-missing", lambda k: k.token(token_type=...), INVALID),
    Row("C09-token-type-list", lambda k: k.token(token_type=["access"]), INVALID),
    Row("C09-token-type-uppercase", lambda k: k.token(token_type="ACCESS"), INVALID),
    Row(
        "C10-password-reset-token",
        lambda k: k.hs({"user_id": "1", "exp": now() + 300, "purpose": "reset"}),
        INVALID,
    ),
    Row(
        "C10-password-reset-token-with-iat",
        lambda k: k.hs({"user_id": "1", "iat": now(), "exp": now() + 300, "purpose": "reset"}),
        INVALID,
    ),
    Row("C11-user-id-claim-missing", lambda k: k.token(user_id=...), INVALID),
    Row("C12-jti-not-a-string", lambda k: k.token(jti=123), INVALID),
    Row(
        "C12-jti-missing-with-revocation", lambda k: k.token(jti=...), INVALID, settings=REVOCATION
    ),
    Row(
        "C12-jti-missing-accepted-without-revocation", lambda k: k.token(jti=...), ACCEPT, queries=1
    ),
    *[
        Row(f"C13-sub-{label}", lambda k, v=value: k.token(sub=v), INVALID)
        for label, value in (("number", 42), ("list", ["1"]), ("object", {"id": 1}))
    ],
    Row("C14-user-id-lone-surrogate", lambda k: k.token(user_id="\ud800"), INVALID),
    Row(
        "C14-username-lone-surrogate",
        lambda k: k.token(user_id="\ud800"),
        INVALID,
        settings={"USER_ID_FIELD": "username"},
    ),
    Row(
        "C15-duplicate-user-id-claim",
        lambda k: k.payload(compact_json(k.claims())[:-1] + b',"user_id":"2"}'),
        MALFORMED,
    ),
    Row("C16-user-id-empty", lambda k: k.token(user_id=""), INVALID),
    # U: user resolution (user 1 is active, user 2 inactive, nobody else exists)
    Row("U01-user-id-sql-or", lambda k: k.token(user_id="1 OR 1=1"), INVALID),
    Row("U01-user-id-sql-drop", lambda k: k.token(user_id="1; DROP TABLE auth_user"), INVALID),
    *[
        Row(f"U02-user-id-{label}", lambda k, v=value: k.token(user_id=v), INVALID)
        for label, value in (
            ("object", {"id": 1}),
            ("mongo-operator", {"$ne": None}),
            ("list", [1]),
        )
    ],
    Row("U03-user-id-10e100", lambda k: k.token(user_id="1" + "0" * 100), INVALID),
    Row("U03-user-id-2e63", lambda k: k.token(user_id=str(2**63)), INVALID),
    Row("U03-user-id-minus-one", lambda k: k.token(user_id="-1"), USER, queries=1),
    Row("U03-user-id-zero", lambda k: k.token(user_id="0"), USER, queries=1),
    *[
        Row(f"U04-user-id-{label}", lambda k, v=value: k.token(user_id=v), INVALID)
        for label, value in (
            ("true", True),
            ("float-1.0", 1.0),
            ("float-1.9", 1.9),
            ("fullwidth-one", "\uff11"),
            ("spaced", " 1 "),
            ("leading-zero", "01"),
        )
    ],
    Row("U04-user-id-json-integer", lambda k: k.token(user_id=1), ACCEPT, queries=1),
    Row("U05-user-id-empty", lambda k: k.token(user_id=""), INVALID),
    Row("U05-user-id-null", lambda k: k.token(user_id=None), INVALID),
    Row("U06-user-not-found", lambda k: k.token(user_id="5"), USER, queries=1),
    Row("U07-user-inactive", lambda k: k.token(user_id="2"), USER, queries=1),
    Row(
        "U10-resolver-crashes",
        lambda k: k.hs(),
        UNAVAILABLE,
        settings={"USER_RESOLVER": crashing_resolver},
    ),
    Row(
        "U10-database-error-in-lookup",
        lambda k: k.hs(),
        UNAVAILABLE,
        settings={"USER_RESOLVER": missing_table_resolver},
        queries=1,
    ),
    Row(
        "U10-revocation-backend-down",
        lambda k: k.hs(),
        UNAVAILABLE,
        settings={"REVOCATION_CHECK": broken_revocation_check},
    ),
    Row(
        "U12-sync-orm-resolver",
        lambda k: k.hs(),
        ACCEPT,
        settings={"USER_RESOLVER": orm_resolver},
        queries=1,
    ),
    # S: token structure and encoding
    Row("S01-empty-token", lambda k: "", MISSING),
    *[
        Row(f"S02-{label}", lambda k, v=value: v, MALFORMED)
        for label, value in (("one-dot", "."), ("two-dots", ".."), ("three-dots", "..."))
    ],
    Row("S02-two-segments", lambda k: k.hs().rsplit(".", 1)[0], MALFORMED),
    Row(
        "S03-signature-minus-1-non-canonical",
        lambda k: truncated_signature(k, canonical=False),
        MALFORMED,
    ),
    Row(
        "S03-signature-minus-1-canonical", lambda k: truncated_signature(k, canonical=True), INVALID
    ),
    Row("S03-signature-minus-2", lambda k: k.hs()[:-2], MALFORMED),
    Row("S03-cut-in-half", lambda k: halved(k.hs()), MALFORMED),
    Row("S03-empty-signature", lambda k: with_signature(k.hs(), ""), INVALID),
    Row("S04-four-segments", lambda k: k.hs() + ".AAAA", MALFORMED),
    Row(
        "S04-jwe-five-segments",
        lambda k: jwe({"alg": "RSA-OAEP", "enc": "A256GCM"}, "AAAA"),
        MALFORMED,
    ),
    Row(
        "S04-jwe-dir-empty-key",
        lambda k: jwe({"alg": "dir", "enc": "A256GCM", "zip": "DEF"}, ""),
        MALFORMED,
    ),
    Row("S05-leading-space", lambda k: " " + k.hs(), MALFORMED),
    Row("S05-trailing-space", lambda k: k.hs() + " ", MALFORMED),
    Row("S05-trailing-newline", lambda k: k.hs() + "\n", MALFORMED),
    Row("S05-trailing-tab", lambda k: k.hs() + "\t", MALFORMED),
    Row("S05-space-inside-segment", lambda k: inserted(k.hs(), 20, " "), MALFORMED),
    Row("S06-bearer-prefix", lambda k: "Bearer " + k.hs(), MALFORMED),
    Row("S06-jwt-prefix", lambda k: "JWT " + k.hs(), MALFORMED),
    Row("S07-trailing-e-acute", lambda k: k.hs() + "\u00e9", MALFORMED),
    Row("S07-trailing-zero-width-space", lambda k: k.hs() + "\u200b", MALFORMED),
    Row("S09-nul-inside", lambda k: inserted(k.hs(), 10, "\x00"), MALFORMED),
    Row("S10-padded-signature", lambda k: k.hs() + "=", MALFORMED),
    Row("S10-every-segment-padded", lambda k: padded(k.hs()), MALFORMED),
    Row("S11-double-padding", lambda k: k.hs() + "==", MALFORMED),
    Row("S11-triple-padding", lambda k: k.hs() + "===", MALFORMED),
    Row("S12-standard-alphabet-signature", standard_alphabet, MALFORMED),
    Row("S13-non-canonical-last-character", non_canonical_last_character, MALFORMED),
    Row("S14-line-break-in-payload", lambda k: line_broken(k.hs()), MALFORMED),
    *[
        Row(f"S15-payload-{label}", lambda k, v=value: k.payload(v), MALFORMED)
        for label, value in (
            ("array", b"[1,2]"),
            ("string", b'"s"'),
            ("number", b"123"),
            ("null", b"null"),
            ("empty", b""),
            ("truncated-object", b"{"),
        )
    ],
    Row(
        "S16-payload-utf16", lambda k: k.payload(json.dumps(k.claims()).encode("utf-16")), MALFORMED
    ),
    Row("S16-payload-cesu-lone-surrogate", lambda k: k.payload(cesu_claims(k)), MALFORMED),
    Row("S17-payload-nested-1000", lambda k: k.payload(nested(1000)), MALFORMED),
    Row("S17-payload-nested-100000", lambda k: k.payload(nested(100_000)), MALFORMED),
    Row(
        "S17-header-nested-1000",
        lambda k: k.raw(b'{"alg":"HS256","x":' + nested(1000) + b"}"),
        MALFORMED,
    ),
    Row("S18-hs256-signature-31-bytes", lambda k: with_signature(k.hs(), b64u(bytes(31))), INVALID),
    Row("S18-hs256-signature-33-bytes", lambda k: with_signature(k.hs(), b64u(bytes(33))), INVALID),
    Row("S19-es256-der-signature", lambda k: der_signature(k.signed("ES256")), INVALID, "ES256"),
    Row(
        "S20-es256-signature-63-bytes",
        lambda k: k.es256_signature(signature_of(k.signed("ES256"))[:63]),
        INVALID,
        "ES256",
    ),
    Row(
        "S20-es256-signature-65-bytes",
        lambda k: k.es256_signature(signature_of(k.signed("ES256")) + b"\x00"),
        INVALID,
        "ES256",
    ),
    Row("S20-es256-signature-r-s-zero", lambda k: k.es256_signature(bytes(64)), INVALID, "ES256"),
    Row("S20-es256-signature-empty", lambda k: k.es256_signature(b""), INVALID, "ES256"),
    Row(
        "S21-es256-high-s-malleated",
        lambda k: high_s(k.signed("ES256")),
        ACCEPT,
        "ES256",
        queries=1,
    ),
    Row(
        "S22-rsa-signature-zeros",
        lambda k: with_signature(k.signed("RS256"), b64u(bytes(256))),
        INVALID,
        "RS256",
    ),
    Row(
        "S22-rsa-signature-equal-to-modulus",
        lambda k: with_signature(k.signed("RS256"), b64u(modulus(k.keys))),
        INVALID,
        "RS256",
    ),
    Row(
        "S22-rsa-signature-10kb",
        lambda k: with_signature(k.signed("RS256"), b64u(bytes(10_240))),
        MALFORMED,
        "RS256",
    ),
    Row(
        "S23-ed25519-signature-63-bytes",
        lambda k: (lambda t: with_signature(t, b64u(signature_of(t)[:63])))(k.signed("EdDSA")),
        INVALID,
        "EdDSA",
    ),
    Row("S24-jws-json-serialization", lambda k: json_serialization(k.hs()), MALFORMED),
    Row("S24-token-inside-json", lambda k: '{"a":"' + k.hs() + '"}', MALFORMED),
    # D: size
    Row("D02-64kb-header-valid-mac", lambda k: k.header(x="A" * 65_536), MALFORMED),
    Row("D08-nesting-within-cap", lambda k: k.payload(nested(2000)), MALFORMED),
    # L05: a valid token in each profile, the baseline for every row above
    Row("L05-valid-token-HS256", lambda k: k.hs(), ACCEPT, queries=1),
    *[
        Row(f"L05-valid-token-{alg}", lambda k, a=alg: k.signed(a), ACCEPT, alg, queries=1)
        for alg in ("RS256", "PS256", "ES256", "EdDSA")
    ],
    Row(
        "L05-valid-token-configured-kid",
        lambda k: k.rs256(kid="k1"),
        ACCEPT,
        "RS256-kid",
        queries=1,
    ),
]
