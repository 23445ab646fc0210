"""Unit tests for ``issue_token`` (``channels_jwt.tokens``): claims, keys, round trips."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import channels_jwt
from channels_jwt import tokens
from channels_jwt.conf import Settings
from channels_jwt.config import config_of
from channels_jwt.tokens import DEFAULT_LIFETIME_SECONDS, issue_token
from channels_jwt.verify import TokenVerifier
from tests.harness import HS_KEY, Keys, private_pem, public_pem


@dataclass
class StubUser:
    """Just the attributes ``issue_token`` reads (no database needed)."""

    id: int = 42
    username: str = "alice"


def configured(**values: Any) -> Any:
    """``override_settings`` with ``CHANNELS_JWT`` = the test signing key plus ``values``."""
    return override_settings(CHANNELS_JWT={"SIGNING_KEY": HS_KEY, **values})


def decoded(token: str, key: Any = HS_KEY, algorithm: str = "HS256") -> dict[str, Any]:
    """The token's claims, with the signature checked but no claim validation."""
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=[algorithm], options={"verify_aud": False, "verify_iss": False}
    )
    return claims


def test_issue_token_is_exported() -> None:
    assert channels_jwt.issue_token is tokens.issue_token
    assert "issue_token" in channels_jwt.__all__


def test_default_lifetime_is_300_seconds() -> None:
    assert DEFAULT_LIFETIME_SECONDS == 300


@configured()
def test_default_claims_shape() -> None:
    before = int(time.time())
    claims = decoded(issue_token(StubUser()))
    after = int(time.time())
    assert set(claims) == {"user_id", "token_type", "iat", "exp", "jti"}
    assert claims["user_id"] == "42"
    assert claims["token_type"] == "access"
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 300
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) == 32
    int(claims["jti"], 16)


@configured()
def test_header_names_the_algorithm() -> None:
    assert jwt.get_unverified_header(issue_token(StubUser())) == {"alg": "HS256", "typ": "JWT"}


@configured()
def test_each_token_has_its_own_jti() -> None:
    first = decoded(issue_token(StubUser()))["jti"]
    second = decoded(issue_token(StubUser()))["jti"]
    assert first != second


@configured(USER_ID_FIELD="username", USER_ID_CLAIM="sub")
def test_user_id_claim_and_field_are_configurable() -> None:
    claims = decoded(issue_token(StubUser()))
    assert claims["sub"] == "alice"
    assert "user_id" not in claims


@configured(TOKEN_TYPES=["websocket", "access"], TOKEN_TYPE_CLAIM="kind")
def test_token_type_is_the_first_configured_type() -> None:
    claims = decoded(issue_token(StubUser()))
    assert claims["kind"] == "websocket"
    assert "token_type" not in claims


@configured(TOKEN_TYPE_CLAIM=None)
def test_no_token_type_claim_when_disabled() -> None:
    assert "token_type" not in decoded(issue_token(StubUser()))


@pytest.mark.parametrize(
    ("lifetime", "seconds"),
    [
        pytest.param(60, 60, id="int-seconds"),
        pytest.param(90.0, 90, id="float-seconds"),
        pytest.param(0.2, 1, id="fraction-rounds-up"),
        pytest.param(timedelta(minutes=2), 120, id="timedelta"),
        pytest.param(timedelta(hours=1, seconds=1), 3601, id="long-timedelta"),
    ],
)
@configured()
def test_lifetime(lifetime: Any, seconds: int) -> None:
    claims = decoded(issue_token(StubUser(), lifetime=lifetime))
    assert claims["exp"] - claims["iat"] == seconds


@configured(AUDIENCE="chat-api", ISSUER="https://auth.example")
def test_audience_and_issuer_when_configured() -> None:
    claims = decoded(issue_token(StubUser()))
    assert (claims["aud"], claims["iss"]) == ("chat-api", "https://auth.example")


@configured(AUDIENCE=["chat-api", "web"], ISSUER=["https://a.example", "https://b.example"])
def test_audience_list_kept_and_first_issuer_used() -> None:
    claims = decoded(issue_token(StubUser()))
    assert (claims["aud"], claims["iss"]) == (["chat-api", "web"], "https://a.example")


@configured()
def test_no_audience_or_issuer_by_default() -> None:
    claims = decoded(issue_token(StubUser()))
    assert "aud" not in claims
    assert "iss" not in claims


@configured(AUDIENCE="chat-api")
def test_claims_are_added_and_override_defaults() -> None:
    claims = decoded(
        issue_token(
            StubUser(),
            claims={"token_type": "refresh", "aud": "other", "scope": "chat", "jti": "fixed"},
        )
    )
    assert claims["token_type"] == "refresh"
    assert claims["aud"] == "other"
    assert claims["scope"] == "chat"
    assert claims["jti"] == "fixed"
    assert claims["user_id"] == "42"


@configured()
def test_claims_can_override_exp() -> None:
    exp = int(time.time()) + 10
    assert decoded(issue_token(StubUser(), lifetime=600, claims={"exp": exp}))["exp"] == exp


@configured(ALGORITHMS=["HS512", "HS256"], SIGNING_KEY="s" * 64)
def test_signs_with_the_first_algorithm() -> None:
    token = issue_token(StubUser())
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert decoded(token, key="s" * 64, algorithm="HS512")["user_id"] == "42"


@configured(AUDIENCE="chat-api", ISSUER="https://auth.example", MAX_TOKEN_LIFETIME=300)
def test_hmac_round_trip_through_the_verifier() -> None:
    token = issue_token(StubUser())
    claims = TokenVerifier.from_config(config_of(Settings()), require_jti=True).verify(token)
    assert claims["user_id"] == "42"


def test_signing_key_change_is_picked_up() -> None:
    with configured(SIGNING_KEY="a" * 32):
        first = issue_token(StubUser())
    with configured(SIGNING_KEY="b" * 32):
        second = issue_token(StubUser())
    assert decoded(first, key="a" * 32)["user_id"] == "42"
    assert decoded(second, key="b" * 32)["user_id"] == "42"


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "EdDSA"])
def test_asymmetric_round_trip(keys: Keys, algorithm: str) -> None:
    private_key = keys.for_algorithm(algorithm)
    with override_settings(
        CHANNELS_JWT={
            "ALGORITHMS": [algorithm],
            "PRIVATE_KEY": private_pem(private_key),
            "VERIFYING_KEY": public_pem(private_key),
        }
    ):
        token = issue_token(StubUser())
        claims = TokenVerifier.from_config(config_of(Settings())).verify(token)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert claims["user_id"] == "42"
    assert claims["exp"] - claims["iat"] == 300


#: Keys to verify with, for configurations that only sign: a JWKS URL (fetched on first use).
SIGNING_ONLY = {"JWK_URL": "https://issuer.example/jwks.json"}


def test_private_key_object_is_accepted(keys: Keys) -> None:
    values = {"ALGORITHMS": ["ES384"], "PRIVATE_KEY": keys.p384, **SIGNING_ONLY}
    with override_settings(CHANNELS_JWT=values):
        token = issue_token(StubUser())
    assert decoded(token, key=keys.p384.public_key(), algorithm="ES384")["user_id"] == "42"


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        pytest.param(
            {"ALGORITHMS": ["RS256"], **SIGNING_ONLY},
            "PRIVATE_KEY is required",
            id="no-private-key",
        ),
        pytest.param({"SIGNING_KEY": None}, "E006: ", id="no-signing-key"),
        pytest.param({"SIGNING_KEY": "x" * 16}, "16 bytes", id="short-signing-key"),
        pytest.param(
            {"ALGORITHMS": ["ES256"], "PRIVATE_KEY": "not a pem", **SIGNING_ONLY},
            "not an unencrypted PEM private key",
            id="garbage-private-key",
        ),
    ],
)
def test_improperly_configured_without_a_usable_key(values: dict[str, Any], fragment: str) -> None:
    with override_settings(CHANNELS_JWT=values), pytest.raises(ImproperlyConfigured) as info:
        issue_token(StubUser())
    assert str(info.value).startswith("issue_token cannot sign: ")
    assert fragment in str(info.value)
    assert "xxxx" not in str(info.value)


def test_rsa_1024_private_key_is_improperly_configured(keys: Keys) -> None:
    pem = private_pem(keys.rsa_small)
    values = {"ALGORITHMS": ["RS256"], "PRIVATE_KEY": pem, **SIGNING_ONLY}
    with (
        override_settings(CHANNELS_JWT=values),
        pytest.raises(ImproperlyConfigured, match="1024 bits") as info,
    ):
        issue_token(StubUser())
    assert pem not in str(info.value)


def test_public_key_as_private_key_is_improperly_configured(keys: Keys) -> None:
    values = {"ALGORITHMS": ["RS256"], "PRIVATE_KEY": public_pem(keys.rsa), **SIGNING_ONLY}
    with (
        override_settings(CHANNELS_JWT=values),
        pytest.raises(ImproperlyConfigured, match=r"E013: CHANNELS_JWT PRIVATE_KEY cannot be used"),
    ):
        issue_token(StubUser())
