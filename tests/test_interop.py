"""Tokens minted by other JOSE implementations verify; their tampered variants do not.

Three independent implementations sign RS256, PS256, ES256 and EdDSA tokens with the session's
keys: ``jwcrypto`` and ``joserfc`` in Python, and the ``jose`` package in Node.js (pinned by
``tests/interop/node/package-lock.json``, installed with ``npm ci`` on first use). Each token
goes through the middleware twice: with the public keys configured as ``VERIFYING_KEY`` and
with them served by a JWKS endpoint. Node.js and npm are required: without them these tests
fail, they never skip.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt as joserfc_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt

from channels_jwt import JWTAuthMiddleware
from tests.harness import Keys, RecordingApp, public_pem
from tests.jwks_server import (
    ASYMMETRIC_ALGORITHMS,
    handshake,
    idp_claims,
    idp_settings,
    jwk_dict,
    public_jwk,
    running_jwks_server,
)
from tests.nodejs import INTEROP_DIR, installed_node, run

MINTERS = ["jwcrypto", "joserfc", "node-jose"]
KIDS = {"RS256": "rsa-1", "PS256": "rsa-1", "ES256": "p256-1", "EdDSA": "ed25519-1"}
JOSERFC_KEYS = {"RS256": RSAKey, "PS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}
#: What each tampering does to a token, and the close code it must get.
TAMPERINGS = {
    "payload-byte-flipped": 4401,
    "signature-byte-flipped": 4401,
    "alg-swapped": 4401,
    "alg-HS256-key-confusion": 4401,
    "alg-none-unsigned": 4401,
    "signature-stripped": 4401,
}
SWAPPED_ALG = {"RS256": "PS256", "PS256": "RS256", "ES256": "EdDSA", "EdDSA": "ES256"}


def private_pem_bytes(private_key: Any) -> bytes:
    return bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def mint_with_jwcrypto(private_key: Any, alg: str, claims: dict[str, Any]) -> str:
    key = jwcrypto_jwk.JWK.from_pem(private_pem_bytes(private_key))
    token = jwcrypto_jwt.JWT(header={"alg": alg, "kid": KIDS[alg], "typ": "JWT"}, claims=claims)
    token.make_signed_token(key)
    return str(token.serialize())


def mint_with_joserfc(private_key: Any, alg: str, claims: dict[str, Any]) -> str:
    key = JOSERFC_KEYS[alg].import_key(private_pem_bytes(private_key))
    with warnings.catch_warnings():
        # joserfc flags "EdDSA" as deprecated by RFC 9864 (in favour of "Ed25519"); the
        # identity providers this package serves still use "EdDSA".
        warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
        return joserfc_jwt.encode({"alg": alg, "kid": KIDS[alg]}, claims, key, algorithms=[alg])


def mint_with_node_jose(requests: list[dict[str, Any]]) -> list[str]:
    """Tokens from ``node mint.mjs`` (private JWKs and claims on stdin, tokens on stdout)."""
    node = installed_node(INTEROP_DIR, "jose")
    output = run([node, "mint.mjs"], INTEROP_DIR, stdin=json.dumps({"requests": requests}))
    tokens: list[str] = json.loads(output)["tokens"]
    return tokens


@pytest.fixture(scope="module")
def claims() -> dict[str, Any]:
    """The payload every foreign token carries."""
    return idp_claims(sub="alice", email="alice@example.com")


@pytest.fixture(scope="module")
def foreign_tokens(keys: Keys, claims: dict[str, Any]) -> dict[tuple[str, str], str]:
    """``{(minter, alg): token}`` for every minter and algorithm."""
    tokens: dict[tuple[str, str], str] = {}
    for alg in ASYMMETRIC_ALGORITHMS:
        private_key = keys.for_algorithm(alg)
        tokens["jwcrypto", alg] = mint_with_jwcrypto(private_key, alg, claims)
        tokens["joserfc", alg] = mint_with_joserfc(private_key, alg, claims)
    requests = [
        {
            "alg": alg,
            "kid": KIDS[alg],
            "jwk": jwk_dict(keys.for_algorithm(alg), None, use=None),
            "claims": claims,
        }
        for alg in ASYMMETRIC_ALGORITHMS
    ]
    minted = mint_with_node_jose(requests)
    tokens.update(
        {
            ("node-jose", alg): token
            for alg, token in zip(ASYMMETRIC_ALGORITHMS, minted, strict=True)
        }
    )
    return tokens


@pytest.fixture(scope="module")
def jwks_url(keys: Keys) -> Iterator[str]:
    """A JWKS endpoint publishing the three public keys (without ``alg``)."""
    with running_jwks_server() as server:
        server.publish(
            public_jwk(keys.rsa, KIDS["RS256"]),
            public_jwk(keys.p256, KIDS["ES256"]),
            public_jwk(keys.ed25519, KIDS["EdDSA"]),
        )
        yield server.url


@pytest.fixture(params=["static-keys", "jwks"])
def app(request: pytest.FixtureRequest, keys: Keys) -> JWTAuthMiddleware:
    """The middleware with the issuer's keys as a ``{kid: pem}`` map, or from the JWKS."""
    if request.param == "jwks":
        settings = idp_settings(request.getfixturevalue("jwks_url"))
    else:
        verifying_keys = {
            KIDS["RS256"]: public_pem(keys.rsa),
            KIDS["ES256"]: public_pem(keys.p256),
            KIDS["EdDSA"]: public_pem(keys.ed25519),
        }
        settings = idp_settings(None, VERIFYING_KEY=verifying_keys)
    return JWTAuthMiddleware(RecordingApp(), settings=settings)


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(header_segment: str, **changes: Any) -> str:
    header = json.loads(b64decode(header_segment))
    header.update(changes)
    return b64encode(json.dumps(header, separators=(",", ":")).encode())


def tampered(token: str, tampering: str) -> str:
    header, payload, signature = token.split(".")
    if tampering == "payload-byte-flipped":
        raw = b64decode(payload)
        assert raw.count(b'"alice"') == 1
        flipped = b64encode(raw.replace(b'"alice"', b'"alicf"'))
        return f"{header}.{flipped}.{signature}"
    if tampering == "signature-byte-flipped":
        raw = bytearray(b64decode(signature))
        raw[len(raw) // 2] ^= 0x01
        return f"{header}.{payload}.{b64encode(bytes(raw))}"
    if tampering == "alg-swapped":
        alg = json.loads(b64decode(header))["alg"]
        return f"{with_header(header, alg=SWAPPED_ALG[alg])}.{payload}.{signature}"
    if tampering == "alg-HS256-key-confusion":
        return f"{with_header(header, alg='HS256')}.{payload}.{signature}"
    if tampering == "alg-none-unsigned":
        return f"{with_header(header, alg='none')}.{payload}."
    assert tampering == "signature-stripped"
    return f"{header}.{payload}."


@pytest.mark.parametrize("alg", ASYMMETRIC_ALGORITHMS)
@pytest.mark.parametrize("minter", MINTERS)
async def test_foreign_token_is_accepted(
    app: JWTAuthMiddleware,
    foreign_tokens: dict[tuple[str, str], str],
    claims: dict[str, Any],
    minter: str,
    alg: str,
) -> None:
    token = foreign_tokens[minter, alg]
    header = jwt.get_unverified_header(token)

    outcome = await handshake(app, token)

    assert (header["alg"], header["kid"]) == (alg, KIDS[alg])
    assert outcome.accepted
    scope = app.inner.scopes[0]  # type: ignore[attr-defined]
    assert scope["user"].pk == "alice"
    assert dict(scope["jwt"].claims) == claims


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
@pytest.mark.parametrize("alg", ASYMMETRIC_ALGORITHMS)
@pytest.mark.parametrize("minter", MINTERS)
async def test_tampered_foreign_token_is_refused(
    app: JWTAuthMiddleware,
    foreign_tokens: dict[tuple[str, str], str],
    minter: str,
    alg: str,
    tampering: str,
) -> None:
    token = tampered(foreign_tokens[minter, alg], tampering)

    outcome = await handshake(app, token)

    assert outcome.code == TAMPERINGS[tampering]
    assert not app.inner.called  # type: ignore[attr-defined]


def test_node_jose_is_the_locked_version() -> None:
    node = installed_node(INTEROP_DIR, "jose")
    version = run([node, "--version"], INTEROP_DIR).strip()
    lock = json.loads((INTEROP_DIR / "package-lock.json").read_text())
    installed = json.loads((INTEROP_DIR / "node_modules" / "jose" / "package.json").read_text())

    assert int(version.lstrip("v").split(".")[0]) >= 20, version
    assert installed["version"] == lock["packages"]["node_modules/jose"]["version"]
