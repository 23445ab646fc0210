"""The rules of ``CHANNELS_JWT`` (``config.parse``): one case per check id, its hint, and the
valid configuration beside it; the parsed ``Config``."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core import checks
from django.test import override_settings

import channels_jwt.config
from channels_jwt.checks import check_settings, serious
from channels_jwt.conf import Config, Settings
from channels_jwt.revocation import cache_denylist
from tests.harness import (
    CLEAN,
    HS_KEY,
    Keys,
    check_problems,
    never_revoked,
    only_check_message,
    private_pem,
    public_pem,
    run_checks,
)

ROOT = Path(__file__).resolve().parent.parent
CHECKS_SOURCE = Path(channels_jwt.config.__file__).read_text()

#: A clean configuration without the query source, so no I001 either.

KeyedConfig = Callable[[Keys], dict[str, Any]]


def encrypted_pem(private_key: Any) -> str:
    """A password-protected PKCS#8 PEM (unusable without the password)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    ).decode()


# -- one case per check id, settings without keys -----------------------------------------------

BAD_SETTINGS = [
    pytest.param("HS256", "E001", id="E001-string"),
    pytest.param([("SIGNING_KEY", HS_KEY)], "E001", id="E001-list"),
    pytest.param({**CLEAN, "ALGORITHMS": "HS256"}, "E002", id="E002-string"),
    pytest.param({**CLEAN, "ALGORITHMS": []}, "E002", id="E002-empty"),
    pytest.param({**CLEAN, "ALGORITHMS": None}, "E002", id="E002-none-value"),
    pytest.param({**CLEAN, "ALGORITHMS": ["HS257"]}, "E003", id="E003-unknown"),
    pytest.param({**CLEAN, "ALGORITHMS": ["hs256"]}, "E003", id="E003-wrong-case"),
    pytest.param({**CLEAN, "ALGORITHMS": [256]}, "E003", id="E003-not-a-string"),
    pytest.param({**CLEAN, "ALGORITHMS": [["HS256"]]}, "E003", id="E003-unhashable"),
    pytest.param({**CLEAN, "ALGORITHMS": ["none"]}, "E004", id="E004-none"),
    pytest.param({**CLEAN, "ALGORITHMS": ["HS256", "NoNe"]}, "E004", id="E004-none-any-case"),
    pytest.param({**CLEAN, "ALGORITHMS": ["HS256", "RS256"]}, "E005", id="E005-mixed"),
    pytest.param({**CLEAN, "SIGNING_KEY": None}, "E006", id="E006-none"),
    pytest.param({**CLEAN, "SIGNING_KEY": ""}, "E006", id="E006-empty"),
    pytest.param({**CLEAN, "SIGNING_KEY": "k" * 31}, "E007", id="E007-hs256-31-bytes"),
    pytest.param(
        {**CLEAN, "SIGNING_KEY": "é" * 15 + "k"}, "E007", id="E007-counts-bytes-not-characters"
    ),
    pytest.param(
        {**CLEAN, "ALGORITHMS": ["HS512"], "SIGNING_KEY": b"k" * 48}, "E007", id="E007-hs512-48"
    ),
    pytest.param(
        {**CLEAN, "ALGORITHMS": ["HS256", "HS384"], "SIGNING_KEY": "k" * 32},
        "E007",
        id="E007-largest-hash-wins",
    ),
    pytest.param({**CLEAN, "ALGORITHMS": ["RS256"]}, "E008", id="E008-no-verifying-key"),
    pytest.param(
        {**CLEAN, "ALGORITHMS": ["ES256"], "VERIFYING_KEY": "not a pem"},
        "E009",
        id="E009-not-pem",
    ),
    pytest.param(
        {**CLEAN, "ALGORITHMS": ["ES256"], "VERIFYING_KEY": 42}, "E009", id="E009-not-text"
    ),
    pytest.param({**CLEAN, "LEEWAY": 61}, "E014", id="E014-over-60"),
    pytest.param({**CLEAN, "LEEWAY": 60.5}, "E014", id="E014-float-over-60"),
    pytest.param({**CLEAN, "LEEWAY": timedelta(minutes=2)}, "E014", id="E014-timedelta-over-60"),
    pytest.param({**CLEAN, "LEEWAY": -1}, "E014", id="E014-negative"),
    pytest.param({**CLEAN, "LEEWAY": timedelta(seconds=-1)}, "E014", id="E014-negative-timedelta"),
    pytest.param({**CLEAN, "LEEWAY": "5"}, "E014", id="E014-string"),
    pytest.param({**CLEAN, "LEEWAY": True}, "E014", id="E014-bool"),
    pytest.param({**CLEAN, "LEEWAY": float("nan")}, "E014", id="E014-nan"),
    pytest.param({**CLEAN, "LEEWAY": float("inf")}, "E014", id="E014-infinity"),
    pytest.param({**CLEAN, "TOKEN_SOURCES": ["subprotocol", "smoke"]}, "E015", id="E015-unknown"),
    pytest.param({**CLEAN, "TOKEN_SOURCES": []}, "E015", id="E015-empty"),
    pytest.param({**CLEAN, "TOKEN_SOURCES": None}, "E015", id="E015-none-value"),
    pytest.param({**CLEAN, "TOKEN_SOURCES": ["cookie"]}, "E016", id="E016-no-cookie-name"),
    pytest.param(
        {**CLEAN, "TOKEN_SOURCES": ["cookie"], "COOKIE_NAME": ""}, "E016", id="E016-empty-name"
    ),
    pytest.param(
        {**CLEAN, "USER_RESOLVER": "channels_jwt.users.no_such_resolver"},
        "E017",
        id="E017-resolver-not-importable",
    ),
    pytest.param(
        {**CLEAN, "USER_RESOLVER": "not a dotted path"}, "E017", id="E017-resolver-not-a-path"
    ),
    pytest.param(
        {**CLEAN, "USER_RESOLVER": "channels_jwt.conf.DEFAULTS"},
        "E017",
        id="E017-resolver-not-callable",
    ),
    pytest.param({**CLEAN, "USER_RESOLVER": 42}, "E017", id="E017-resolver-object-not-callable"),
    pytest.param({**CLEAN, "USER_RESOLVER": None}, "E017", id="E017-resolver-none"),
    pytest.param(
        {**CLEAN, "REVOCATION_CHECK": "channels_jwt.no_such_module.check"},
        "E017",
        id="E017-revocation-not-importable",
    ),
    pytest.param(
        {**CLEAN, "REVOCATION_CHECK": "channels_jwt.conf.DEFAULTS"},
        "E017",
        id="E017-revocation-not-callable",
    ),
    pytest.param({**CLEAN, "REJECT_MODE": "refuse"}, "E018", id="E018-unknown-mode"),
    pytest.param({**CLEAN, "REJECT_MODE": None}, "E018", id="E018-none-value"),
    pytest.param({**CLEAN, "CLOSE_CODES": {"token_late": 4440}}, "E019", id="E019-unknown-reason"),
    pytest.param(
        {**CLEAN, "CLOSE_CODES": {"token_expired": 2999}}, "E019", id="E019-code-below-3000"
    ),
    pytest.param(
        {**CLEAN, "CLOSE_CODES": {"token_expired": 5000}}, "E019", id="E019-code-above-4999"
    ),
    pytest.param({**CLEAN, "CLOSE_CODES": {"token_expired": 1000}}, "E019", id="E019-code-1000"),
    pytest.param(
        {**CLEAN, "CLOSE_CODES": {"token_expired": "4440"}}, "E019", id="E019-code-string"
    ),
    pytest.param({**CLEAN, "CLOSE_CODES": {"token_expired": 4440.0}}, "E019", id="E019-code-float"),
    pytest.param({**CLEAN, "CLOSE_CODES": {"token_expired": True}}, "E019", id="E019-code-bool"),
    pytest.param({**CLEAN, "CLOSE_CODES": [("token_expired", 4440)]}, "E019", id="E019-not-a-dict"),
    pytest.param({**CLEAN, "MAX_TOKEN_BYTES": 0}, "E020", id="E020-zero"),
    pytest.param({**CLEAN, "MAX_TOKEN_BYTES": 65537}, "E020", id="E020-over-64k"),
    pytest.param({**CLEAN, "MAX_TOKEN_BYTES": "8192"}, "E020", id="E020-string"),
    pytest.param({**CLEAN, "MAX_TOKEN_BYTES": 8192.0}, "E020", id="E020-float"),
    pytest.param({**CLEAN, "MAX_TOKEN_BYTES": True}, "E020", id="E020-bool"),
    pytest.param({**CLEAN, "USER_ID_FIELD": "uid"}, "E021", id="E021-unknown-field"),
    pytest.param({**CLEAN, "USER_ID_FIELD": None}, "E021", id="E021-none-value"),
    pytest.param({**CLEAN, "USER_ID_FIELD": "pk"}, "E021", id="E021-pk-alias"),
    pytest.param({**CLEAN, "USER_ID_FIELD": "groups"}, "E021", id="E021-many-to-many-groups"),
    pytest.param(
        {**CLEAN, "USER_ID_FIELD": "user_permissions"},
        "E021",
        id="E021-many-to-many-permissions",
    ),
    pytest.param({**CLEAN, "MAX_TOKEN_LIFETIME": "300"}, "E022", id="E022-lifetime-string"),
    pytest.param({**CLEAN, "MAX_TOKEN_LIFETIME": -1}, "E022", id="E022-lifetime-negative"),
    pytest.param({**CLEAN, "USER_CACHE_SECONDS": -5}, "E022", id="E022-cache-negative"),
    pytest.param(
        {**CLEAN, "USER_CACHE_SECONDS": timedelta(seconds=-5)},
        "E022",
        id="E022-cache-negative-timedelta",
    ),
    pytest.param({**CLEAN, "TOKEN_TYPES": []}, "E023", id="E023-empty-types"),
    pytest.param({**CLEAN, "TOKEN_TYPES": ()}, "E023", id="E023-empty-tuple"),
    pytest.param({**CLEAN, "SUBPROTOCOL": "access token"}, "E024", id="E024-subprotocol-space"),
    pytest.param({**CLEAN, "SUBPROTOCOL": "access,token"}, "E024", id="E024-subprotocol-comma"),
    pytest.param({**CLEAN, "SUBPROTOCOL": ""}, "E024", id="E024-subprotocol-empty"),
    pytest.param({**CLEAN, "QUERY_PARAM": ""}, "E024", id="E024-query-param-empty"),
    pytest.param({**CLEAN, "QUERY_PARAM": "to=ken"}, "E024", id="E024-query-param-equals"),
    pytest.param({**CLEAN, "HEADER_SCHEME": 1}, "E024", id="E024-header-scheme-not-string"),
    pytest.param({**CLEAN, "HEADER_SCHEME": "Bear er"}, "E024", id="E024-header-scheme-space"),
    pytest.param({**CLEAN, "ALLOW_ANONYMOUS": "false"}, "E025", id="E025-string"),
    pytest.param({**CLEAN, "ALLOW_ANONYMOUS": 1}, "E025", id="E025-int"),
    pytest.param({**CLEAN, "CLOSE_ON_EXPIRY": "no"}, "E025", id="E025-close-on-expiry-string"),
    pytest.param({**CLEAN, "LIVE_REVOCATION": None}, "E025", id="E025-live-revocation-none"),
    pytest.param({**CLEAN, "REVOCATION_CACHE": "redis"}, "E033", id="E033-unknown-alias"),
    pytest.param({**CLEAN, "REVOCATION_CACHE": None}, "E033", id="E033-not-a-string"),
    pytest.param({**CLEAN, "REQUIRED_CLAIMS": "exp"}, "E026", id="E026-required-string"),
    pytest.param({**CLEAN, "REQUIRED_CLAIMS": ["exp", 1]}, "E026", id="E026-required-non-string"),
    pytest.param({**CLEAN, "TOKEN_TYPES": "access"}, "E026", id="E026-types-string"),
    pytest.param({**CLEAN, "USER_ID_CLAIM": ""}, "E027", id="E027-user-id-claim-empty"),
    pytest.param({**CLEAN, "USER_ID_CLAIM": None}, "E027", id="E027-user-id-claim-none"),
    pytest.param({**CLEAN, "TOKEN_TYPE_CLAIM": 1}, "E027", id="E027-type-claim-int"),
    pytest.param({**CLEAN, "TOKEN_TYPE_CLAIM": ""}, "E027", id="E027-type-claim-empty"),
    pytest.param({**CLEAN, "AUDIENCE": 5}, "E028", id="E028-audience-int"),
    pytest.param({**CLEAN, "AUDIENCE": []}, "E028", id="E028-audience-empty-list"),
    pytest.param({**CLEAN, "ISSUER": ["a", 2]}, "E028", id="E028-issuer-list-non-string"),
    pytest.param(
        {**CLEAN, "JWK_URL": "https://idp.example/jwks.json"}, "E031", id="E031-jwks-with-hmac"
    ),
    pytest.param({**CLEAN, "JWKS_TIMEOUT_SECONDS": 0}, "E030", id="E030-zero"),
    pytest.param({**CLEAN, "JWKS_TIMEOUT_SECONDS": 31}, "E030", id="E030-too-long"),
    pytest.param({**CLEAN, "JWKS_TIMEOUT_SECONDS": "5"}, "E030", id="E030-string"),
    pytest.param({**CLEAN, "JWKS_CACHE_SECONDS": "300"}, "E022", id="E022-jwks-cache-string"),
    pytest.param({**CLEAN, "AUTH_TIMEOUT_SECONDS": 0}, "E034", id="E034-zero"),
    pytest.param({**CLEAN, "AUTH_TIMEOUT_SECONDS": 61}, "E034", id="E034-too-long"),
    pytest.param({**CLEAN, "AUTH_TIMEOUT_SECONDS": None}, "E034", id="E034-none"),
    pytest.param({**CLEAN, "AUTH_TIMEOUT_SECONDS": "10"}, "E034", id="E034-string"),
    pytest.param({**CLEAN, "RATE_LIMIT": "20"}, "E035", id="E035-no-period"),
    pytest.param({**CLEAN, "RATE_LIMIT": "0/min"}, "E035", id="E035-zero"),
    pytest.param({**CLEAN, "RATE_LIMIT": "20/fortnight"}, "E035", id="E035-unknown-period"),
    pytest.param({**CLEAN, "RATE_LIMIT": " 20/min"}, "E035", id="E035-space"),
    pytest.param({**CLEAN, "RATE_LIMIT": 20}, "E035", id="E035-int"),
    pytest.param({**CLEAN, "RATE_LIMIT": (20, 60)}, "E035", id="E035-tuple"),
    pytest.param(
        {**CLEAN, "RATE_LIMIT": "20/min", "RATE_LIMIT_CACHE": "redis"}, "E036", id="E036-unknown"
    ),
    pytest.param(
        {**CLEAN, "RATE_LIMIT": "20/min", "RATE_LIMIT_CACHE": None}, "E036", id="E036-none"
    ),
    pytest.param({**CLEAN, "MESSAGE_FORMAT": "xml"}, "E038", id="E038-unknown"),
    pytest.param({**CLEAN, "MESSAGE_FORMAT": "tests.nowhere.read"}, "E038", id="E038-no-import"),
    pytest.param({**CLEAN, "MESSAGE_FORMAT": 5}, "E038", id="E038-not-callable"),
    pytest.param({**CLEAN, "MESSAGE_TIMEOUT_SECONDS": 0}, "E039", id="E039-zero"),
    pytest.param({**CLEAN, "MESSAGE_TIMEOUT_SECONDS": "5"}, "E039", id="E039-string"),
    pytest.param({**CLEAN, "MESSAGE_SUBPROTOCOLS": "graphql-ws"}, "E040", id="E040-string"),
    pytest.param({**CLEAN, "MESSAGE_SUBPROTOCOLS": [""]}, "E040", id="E040-empty-name"),
    pytest.param({**CLEAN, "ALGORITHM": "HS256"}, "W001", id="W001-typo"),
    pytest.param({**CLEAN, "JWT_SECRET": "x"}, "W001", id="W001-unrelated"),
    pytest.param({**CLEAN, "SIGNING_KEY": settings.SECRET_KEY}, "W002", id="W002-secret-key"),
    pytest.param(
        {**CLEAN, "SIGNING_KEY": settings.SECRET_KEY.encode()},
        "W002",
        id="W002-secret-key-as-bytes",
    ),
]


@pytest.mark.parametrize(("config", "check"), BAD_SETTINGS)
def test_bad_setting_gives_its_check_with_a_hint(config: Any, check: str) -> None:
    only_check_message(run_checks(config), f"channels_jwt.{check}")


# -- keys: VERIFYING_KEY and PRIVATE_KEY, built from the session keys ------------------------------

BAD_KEYS: list[Any] = [
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": [public_pem(k.rsa), "garbage"]},
        "E009",
        id="E009-one-of-a-list",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": public_pem(k.rsa_small)},
        "E010",
        id="E010-verifying-rsa-1024",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["PS256"], "VERIFYING_KEY": {"old": public_pem(k.rsa_small)}},
        "E010",
        id="E010-verifying-rsa-1024-by-kid",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "VERIFYING_KEY": public_pem(k.rsa),
            "PRIVATE_KEY": private_pem(k.rsa_small),
        },
        "E010",
        id="E010-private-rsa-1024",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": private_pem(k.rsa)},
        "E011",
        id="E011-private-pem",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["EdDSA"], "VERIFYING_KEY": k.ed25519},
        "E011",
        id="E011-private-key-object",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["ES256"], "VERIFYING_KEY": public_pem(k.rsa)},
        "E012",
        id="E012-rsa-for-es256",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["ES256"], "VERIFYING_KEY": public_pem(k.p384)},
        "E012",
        id="E012-p384-for-es256",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "VERIFYING_KEY": {"a": public_pem(k.rsa), "b": public_pem(k.ed25519)},
        },
        "E012",
        id="E012-one-kid-unfit",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["ES256"],
            "VERIFYING_KEY": public_pem(k.p256),
            "PRIVATE_KEY": "garbage",
        },
        "E013",
        id="E013-private-unparseable",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["ES256"],
            "VERIFYING_KEY": public_pem(k.p256),
            "PRIVATE_KEY": public_pem(k.p256),
        },
        "E013",
        id="E013-private-is-public",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["ES256"],
            "VERIFYING_KEY": public_pem(k.p256),
            "PRIVATE_KEY": encrypted_pem(k.p256),
        },
        "E013",
        id="E013-private-encrypted",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["ES256"],
            "VERIFYING_KEY": public_pem(k.p256),
            "PRIVATE_KEY": 42,
        },
        "E013",
        id="E013-private-not-text",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256", "ES256"],
            "VERIFYING_KEY": [public_pem(k.rsa), public_pem(k.p256)],
            "PRIVATE_KEY": private_pem(k.p256),
        },
        "E037",
        id="E037-private-unfit-for-first-algorithm",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "VERIFYING_KEY": public_pem(k.rsa),
            "PRIVATE_KEY": private_pem(k.rsa_other),
        },
        "W003",
        id="W003-private-key-not-among-verifying-keys",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "JWK_URL": "http://idp.example/jwks.json"},
        "E029",
        id="E029-http-not-loopback",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "JWK_URL": "file:///etc/jwks.json"},
        "E029",
        id="E029-file-scheme",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "JWK_URL": ["https://idp.example/jwks.json"]},
        "E029",
        id="E029-not-a-string",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "JWK_URL": "https://idp.example/jwks.json",
            "VERIFYING_KEY": public_pem(k.rsa),
        },
        "W004",
        id="W004-verifying-key-ignored",
    ),
]


@pytest.mark.parametrize(("config", "check"), BAD_KEYS)
def test_bad_key_gives_its_check_with_a_hint(keys: Keys, config: KeyedConfig, check: str) -> None:
    only_check_message(run_checks({**CLEAN, **config(keys)}), f"channels_jwt.{check}")


# -- the valid configuration beside each check ---------------------------------------------------

GOOD_SETTINGS = [
    pytest.param(
        {**CLEAN, "ALGORITHMS": ["HS256", "HS384", "HS512"], "SIGNING_KEY": "k" * 64},
        id="E003-E005-all-hmac",
    ),
    pytest.param({**CLEAN, "ALGORITHMS": ("HS384",), "SIGNING_KEY": "k" * 48}, id="E002-tuple"),
    pytest.param({**CLEAN, "SIGNING_KEY": "k" * 32}, id="E007-exactly-32-bytes"),
    pytest.param({**CLEAN, "SIGNING_KEY": b"k" * 32}, id="E007-bytes-key"),
    pytest.param({**CLEAN, "LEEWAY": 60}, id="E014-60"),
    pytest.param({**CLEAN, "LEEWAY": 0.5}, id="E014-float"),
    pytest.param({**CLEAN, "LEEWAY": timedelta(seconds=30)}, id="E014-timedelta"),
    pytest.param({**CLEAN, "TOKEN_SOURCES": "header"}, id="E015-single-string"),
    pytest.param({**CLEAN, "TOKEN_SOURCES": ("header", "subprotocol")}, id="E015-tuple"),
    pytest.param({**CLEAN, "TOKEN_SOURCES": ["cookie"], "COOKIE_NAME": "jwt"}, id="E016-cookie"),
    pytest.param({**CLEAN, "USER_RESOLVER": "channels_jwt.users.token_user"}, id="E017-token-user"),
    pytest.param({**CLEAN, "USER_RESOLVER": never_revoked}, id="E017-resolver-callable"),
    pytest.param(
        {**CLEAN, "REVOCATION_CHECK": "tests.harness.never_revoked"}, id="E017-revocation-path"
    ),
    pytest.param({**CLEAN, "REVOCATION_CHECK": never_revoked}, id="E017-revocation-callable"),
    pytest.param({**CLEAN, "REJECT_MODE": "deny"}, id="E018-deny"),
    pytest.param({**CLEAN, "CLOSE_CODES": {"token_expired": 4000}}, id="E019-override"),
    pytest.param(
        {**CLEAN, "CLOSE_CODES": {"token_missing": 3000, "token_invalid": 4999}}, id="E019-bounds"
    ),
    pytest.param({**CLEAN, "MAX_TOKEN_BYTES": 1}, id="E020-one"),
    pytest.param({**CLEAN, "MAX_TOKEN_BYTES": 65536}, id="E020-64k"),
    pytest.param({**CLEAN, "USER_ID_FIELD": "username"}, id="E021-username"),
    pytest.param({**CLEAN, "MAX_TOKEN_LIFETIME": 3600}, id="E022-lifetime-seconds"),
    pytest.param({**CLEAN, "MAX_TOKEN_LIFETIME": timedelta(hours=1)}, id="E022-lifetime-timedelta"),
    pytest.param({**CLEAN, "USER_CACHE_SECONDS": 30.5}, id="E022-cache-float"),
    pytest.param({**CLEAN, "USER_CACHE_SECONDS": None}, id="E022-cache-none"),
    pytest.param({**CLEAN, "TOKEN_TYPE_CLAIM": None, "TOKEN_TYPES": []}, id="E023-types-disabled"),
    pytest.param({**CLEAN, "ALLOW_ANONYMOUS": True}, id="E025-true"),
    pytest.param({**CLEAN, "CLOSE_ON_EXPIRY": False}, id="E025-close-on-expiry-false"),
    pytest.param({**CLEAN, "REVOCATION_CACHE": "default"}, id="E033-default-alias"),
    pytest.param({**CLEAN, "JWKS_TIMEOUT_SECONDS": timedelta(seconds=2)}, id="E030-timedelta"),
    pytest.param({**CLEAN, "JWKS_CACHE_SECONDS": 60}, id="E022-jwks-cache"),
    pytest.param({**CLEAN, "AUTH_TIMEOUT_SECONDS": 60}, id="E034-at-most"),
    pytest.param({**CLEAN, "AUTH_TIMEOUT_SECONDS": timedelta(seconds=0.5)}, id="E034-timedelta"),
    pytest.param({**CLEAN, "RATE_LIMIT": "20/min"}, id="E035-per-minute"),
    pytest.param({**CLEAN, "RATE_LIMIT": "1/s"}, id="E035-per-second"),
    pytest.param({**CLEAN, "RATE_LIMIT": "500/day"}, id="E035-per-day"),
    pytest.param({**CLEAN, "RATE_LIMIT": None}, id="E035-off"),
    pytest.param({**CLEAN, "RATE_LIMIT_CACHE": "nowhere"}, id="E036-unused-without-rate"),
    pytest.param(
        {**CLEAN, "RATE_LIMIT": "5/h", "RATE_LIMIT_CACHE": "default"}, id="E036-default-alias"
    ),
    pytest.param({**CLEAN, "REQUIRED_CLAIMS": ("exp", "iat", "jti")}, id="E026-tuple"),
    pytest.param({**CLEAN, "TOKEN_TYPE_CLAIM": None}, id="E027-type-claim-none"),
    pytest.param({**CLEAN, "MESSAGE_FORMAT": "graphql-ws"}, id="E038-graphql-ws"),
    pytest.param(
        {**CLEAN, "MESSAGE_FORMAT": "json.loads", "TOKEN_SOURCES": ["message"]}, id="E038"
    ),
    pytest.param({**CLEAN, "USER_ID_CLAIM": "sub"}, id="E027-sub"),
    pytest.param({**CLEAN, "AUDIENCE": ["a", "b"], "ISSUER": "https://i"}, id="E028-list-and-str"),
    pytest.param(
        {**CLEAN, "SUBPROTOCOL": "jwt.v1~x", "QUERY_PARAM": "access_token", "HEADER_SCHEME": "JWT"},
        id="E024-token-characters",
    ),
]


@pytest.mark.parametrize("config", GOOD_SETTINGS)
def test_valid_setting_gives_no_error_or_warning(config: dict[str, Any]) -> None:
    assert check_problems(run_checks(config)) == []


GOOD_KEYS: list[Any] = [
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "JWK_URL": "https://idp.example/.well-known/jwks.json"},
        id="E029-https",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["ES256"], "JWK_URL": "http://127.0.0.1:8080/jwks.json"},
        id="E029-http-loopback-ip",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["EdDSA"], "JWK_URL": "http://localhost/jwks"},
        id="E029-http-localhost",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "JWK_URL": "http://[::1]:9000/jwks",
            "PRIVATE_KEY": private_pem(k.rsa),
        },
        id="E029-http-ipv6-loopback-with-private-key",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["RS256"], "VERIFYING_KEY": public_pem(k.rsa)}, id="E010-rsa-2048"
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["PS512"], "VERIFYING_KEY": public_pem(k.rsa).encode()},
        id="E009-pem-bytes",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "VERIFYING_KEY": [public_pem(k.rsa), public_pem(k.rsa_other)],
        },
        id="E009-list",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "VERIFYING_KEY": {"2024": public_pem(k.rsa), "2025": public_pem(k.rsa_other)},
        },
        id="E009-kid-map",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["ES256"], "VERIFYING_KEY": k.p256.public_key()},
        id="E011-public-key-object",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["ES512"], "VERIFYING_KEY": public_pem(k.p521)},
        id="E012-p521-for-es512",
    ),
    pytest.param(
        lambda k: {"ALGORITHMS": ["EdDSA"], "VERIFYING_KEY": public_pem(k.ed25519)},
        id="E012-ed25519",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256", "ES256"],
            "VERIFYING_KEY": [public_pem(k.rsa), public_pem(k.p256)],
        },
        id="E012-each-key-fits-one-algorithm",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["RS256"],
            "VERIFYING_KEY": public_pem(k.rsa),
            "PRIVATE_KEY": private_pem(k.rsa),
        },
        id="E013-rsa-private-pem",
    ),
    pytest.param(
        lambda k: {
            "ALGORITHMS": ["ES384"],
            "VERIFYING_KEY": public_pem(k.p384),
            "PRIVATE_KEY": k.p384,
        },
        id="E013-private-key-object",
    ),
]


@pytest.mark.parametrize("config", GOOD_KEYS)
def test_valid_keys_give_no_error_or_warning(keys: Keys, config: KeyedConfig) -> None:
    assert check_problems(run_checks({**CLEAN, **config(keys)})) == []


# -- message details --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        pytest.param("ALGORITHM", "'ALGORITHMS'", id="ALGORITHM"),
        pytest.param("LEEWAYS", "'LEEWAY'", id="LEEWAYS"),
        pytest.param("SIGNINGKEY", "'SIGNING_KEY'", id="SIGNINGKEY"),
    ],
)
def test_unknown_key_names_it_and_suggests_the_closest(typo: str, suggestion: str) -> None:
    message = only_check_message(run_checks({**CLEAN, typo: 1}), "channels_jwt.W001")
    assert repr(typo) in message.msg
    assert message.hint == f"Did you mean {suggestion}?"


def test_unknown_key_without_a_close_match_says_it_has_no_effect() -> None:
    message = only_check_message(run_checks({**CLEAN, "COLOUR": "blue"}), "channels_jwt.W001")
    assert message.hint == "Remove it; it has no effect."


def test_each_unknown_key_gets_its_own_warning() -> None:
    messages = run_checks({**CLEAN, "LEEWAYS": 1, 7: "x"})
    assert check_problems(messages) == ["channels_jwt.W001", "channels_jwt.W001"]
    assert "'LEEWAYS'" in messages[0].msg
    assert "7" in messages[1].msg


def test_rsa_too_small_names_the_setting_and_the_size(keys: Keys) -> None:
    config = {
        **CLEAN,
        "ALGORITHMS": ["RS256"],
        "VERIFYING_KEY": public_pem(keys.rsa),
        "PRIVATE_KEY": private_pem(keys.rsa_small),
    }
    message = only_check_message(run_checks(config), "channels_jwt.E010")
    assert "PRIVATE_KEY" in message.msg
    assert "1024 bits" in message.msg


def test_private_key_unfit_names_the_first_algorithm(keys: Keys) -> None:
    config = {
        **CLEAN,
        "ALGORITHMS": ["ES256"],
        "VERIFYING_KEY": public_pem(keys.p256),
        "PRIVATE_KEY": private_pem(keys.p384),
    }
    message = only_check_message(run_checks(config), "channels_jwt.E037")
    assert message.msg == "CHANNELS_JWT PRIVATE_KEY does not fit ES256."


def test_check_messages_never_contain_the_key(keys: Keys) -> None:
    pem = private_pem(keys.rsa)
    messages = run_checks({**CLEAN, "ALGORITHMS": ["RS256"], "VERIFYING_KEY": pem})
    assert all(pem not in f"{message.msg} {message.hint}" for message in messages)
    short = run_checks({**CLEAN, "SIGNING_KEY": "short-secret"})
    assert all("short-secret" not in f"{message.msg} {message.hint}" for message in short)


def test_hmac_key_checks_are_skipped_for_asymmetric_algorithms(keys: Keys) -> None:
    config = {
        **CLEAN,
        "ALGORITHMS": ["ES256"],
        "VERIFYING_KEY": public_pem(keys.p256),
        "SIGNING_KEY": "short",
    }
    assert check_problems(run_checks(config)) == []


def test_key_checks_are_skipped_when_the_algorithms_are_unusable() -> None:
    assert check_problems(run_checks({**CLEAN, "ALGORITHMS": ["none"], "SIGNING_KEY": None})) == [
        "channels_jwt.E004"
    ]


def test_independent_problems_are_all_reported() -> None:
    config = {**CLEAN, "SIGNING_KEY": "short", "LEEWAY": 300, "REJECT_MODE": "x", "LEEWAYS": 1}
    assert check_problems(run_checks(config)) == [
        "channels_jwt.W001",
        "channels_jwt.E007",
        "channels_jwt.E014",
        "channels_jwt.E018",
    ]


def test_query_source_listed_in_the_settings_gives_an_info_with_a_hint() -> None:
    (info,) = run_checks({"SIGNING_KEY": HS_KEY, "TOKEN_SOURCES": ["subprotocol", "query"]})
    assert (info.id, info.level) == ("channels_jwt.I001", checks.INFO)
    assert "RedactTokens" in info.hint


#: CHANNELS_JWT's TOKEN_SOURCES, a middleware's override (None: not set), whether I001 is due.
I001_CASES = {
    "default-has-query-unasked": (None, None, False),
    "listed-without-query": (["subprotocol", "header"], None, False),
    "override-lists-query": (["subprotocol"], ["query"], True),
    "override-drops-query": (["query"], ["subprotocol"], False),
}


@pytest.mark.parametrize(("listed", "override", "due"), I001_CASES.values(), ids=I001_CASES)
def test_query_source_gives_the_info_only_where_it_is_listed(
    listed: list[str] | None, override: list[str] | None, due: bool
) -> None:
    project = {"SIGNING_KEY": HS_KEY} | ({"TOKEN_SOURCES": listed} if listed else {})
    with override_settings(CHANNELS_JWT=project):
        effective = Settings({"TOKEN_SOURCES": override} if override else None)
        messages = check_settings(effective)
        assert ("query" in Config.from_settings(effective).TOKEN_SOURCES) is (listed is None or due)
    assert [message.id for message in messages] == (["channels_jwt.I001"] if due else [])


def test_serious_keeps_errors_and_drops_warnings_and_infos() -> None:
    messages = run_checks(
        {"SIGNING_KEY": settings.SECRET_KEY, "LEEWAY": 61, "TOKEN_SOURCES": ["query"]}
    )
    assert {message.id for message in messages} == {
        "channels_jwt.W002",
        "channels_jwt.E014",
        "channels_jwt.I001",
    }
    assert [message.id for message in serious(messages)] == ["channels_jwt.E014"]


# -- every id is unique and tested ---------------------------------------------------------------


def _emitted_ids() -> dict[str, set[str]]:
    """Map each check id in config.py to the functions that emit it."""
    emitters: dict[str, set[str]] = {}
    tree = ast.parse(CHECKS_SOURCE)
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or function.name == "_error":
            continue
        for node in ast.walk(function):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Name) and node.func.id == "_error":
                number = node.args[0]
                assert isinstance(number, ast.Constant)
                check_id = f"E{number.value:03d}"
            else:
                ids = [kw.value for kw in node.keywords if kw.arg == "id"]
                if not ids:
                    continue
                assert isinstance(ids[0], ast.Constant)
                check_id = ids[0].value.removeprefix("channels_jwt.")
            emitters.setdefault(check_id, set()).add(function.name)
    return emitters


def test_source_parsing_finds_every_id() -> None:
    numbers = {f"E{int(n):03d}" for n in re.findall(r"_error\(\s*(\d+)", CHECKS_SOURCE)}
    others = set(re.findall(r"channels_jwt\.([WI]\d{3})", CHECKS_SOURCE))
    assert set(_emitted_ids()) == numbers | others
    assert len(numbers) >= 20


def test_each_check_id_is_emitted_by_one_function_only() -> None:
    shared = {check_id: names for check_id, names in _emitted_ids().items() if len(names) > 1}
    assert shared == {}


def test_error_ids_are_numbered_without_gaps() -> None:
    numbers = sorted(int(check_id[1:]) for check_id in _emitted_ids() if check_id[0] == "E")
    assert numbers == list(range(1, len(numbers) + 1))


def test_every_check_id_is_tested_here() -> None:
    own = Path(__file__).read_text()
    untested = [check_id for check_id in _emitted_ids() if not re.search(rf'[".]{check_id}"', own)]
    assert untested == []


#: A cache every process shares, that evicts nothing (only its settings are read here).
SHARED_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"},
}
LIVE = {**CLEAN, "LIVE_REVOCATION": True, "REVOCATION_CACHE": "shared"}
CORE_LAYER = "channels_redis.core.RedisChannelLayer"
REDIS_LAYER = {"default": {"BACKEND": CORE_LAYER, "CONFIG": {"capacity": 1000}}}
PUBSUB_LAYER = {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}
DUMMY_CACHE = "django.core.cache.backends.dummy.DummyCache"


@override_settings(CHANNEL_LAYERS=REDIS_LAYER, CACHES=SHARED_CACHES)
def test_live_revocation_on_a_shared_layer_gives_no_problem() -> None:
    assert check_problems(run_checks(LIVE)) == []


@pytest.mark.parametrize(
    ("config", "warned"),
    [({}, True), ({"capacity": 999}, True), ({"capacity": 1000}, False), (None, False)],
)
def test_live_revocation_on_the_core_layer_at_a_small_capacity_is_a_warning(
    config: dict[str, Any] | None, warned: bool
) -> None:
    # None: the pub/sub layer, which has no capacity.
    layer = {"BACKEND": CORE_LAYER, "CONFIG": config} if config is not None else PUBSUB_LAYER
    with override_settings(CHANNEL_LAYERS={"default": layer}, CACHES=SHARED_CACHES):
        assert check_problems(run_checks(LIVE)) == (["channels_jwt.W009"] if warned else [])


@override_settings(CACHES=SHARED_CACHES)
def test_live_revocation_on_the_in_memory_layer_is_a_warning() -> None:
    # The test settings' layer is Channels' in-memory one.
    messages = run_checks(LIVE)
    assert check_problems(messages) == ["channels_jwt.W005"]
    assert "another process" in only_check_message(messages, "channels_jwt.W005").hint
    assert check_problems(run_checks({**LIVE, "LIVE_REVOCATION": False})) == []


@override_settings(CHANNEL_LAYERS={}, CACHES=SHARED_CACHES)
def test_live_revocation_needs_a_channel_layer() -> None:
    messages = run_checks(LIVE)
    assert check_problems(messages) == ["channels_jwt.E032"]
    assert only_check_message(messages, "channels_jwt.E032").hint


@pytest.mark.parametrize(
    "denylist",
    [
        pytest.param({"REVOCATION_CHECK": "channels_jwt.revocation.cache_denylist"}, id="path"),
        pytest.param({"REVOCATION_CHECK": cache_denylist}, id="object"),
        pytest.param({"LIVE_REVOCATION": True}, id="live"),
    ],
)
@override_settings(CACHES=SHARED_CACHES, CHANNEL_LAYERS=REDIS_LAYER)
def test_a_local_memory_denylist_is_a_warning(denylist: dict[str, Any]) -> None:
    messages = run_checks({**CLEAN, **denylist})
    assert check_problems(messages) == ["channels_jwt.W006"]
    assert "noeviction" in only_check_message(messages, "channels_jwt.W006").hint
    assert check_problems(run_checks({**CLEAN, **denylist, "REVOCATION_CACHE": "shared"})) == []


@override_settings(CACHES=SHARED_CACHES)
def test_a_local_memory_cache_without_a_denylist_is_fine() -> None:
    assert check_problems(run_checks({**CLEAN, "REVOCATION_CHECK": never_revoked})) == []


@override_settings(CACHES=SHARED_CACHES)
def test_a_denylist_beside_the_rate_limit_counters_is_a_warning() -> None:
    shared = {
        **CLEAN,
        "REVOCATION_CHECK": cache_denylist,
        "REVOCATION_CACHE": "shared",
        "RATE_LIMIT": "20/min",
        "RATE_LIMIT_CACHE": "shared",
    }
    messages = run_checks(shared)
    assert check_problems(messages) == ["channels_jwt.W007"]
    assert "evict" in only_check_message(messages, "channels_jwt.W007").hint
    assert check_problems(run_checks({**shared, "RATE_LIMIT_CACHE": "default"})) == []
    assert check_problems(run_checks({**shared, "REVOCATION_CHECK": never_revoked})) == []


@override_settings(CACHES={**SHARED_CACHES, "dummy": {"BACKEND": DUMMY_CACHE}})
def test_a_denylist_or_counters_in_a_dummy_cache_is_a_warning() -> None:
    # More on where the denylist lives (W006, W007, W008) in test_denylist_store.py.
    denylist = {**CLEAN, "REVOCATION_CHECK": cache_denylist, "REVOCATION_CACHE": "dummy"}
    assert "keeps nothing" in only_check_message(run_checks(denylist), "channels_jwt.W008").msg
    counters = {**CLEAN, "RATE_LIMIT": "20/min", "RATE_LIMIT_CACHE": "dummy"}
    assert check_problems(run_checks(counters)) == ["channels_jwt.W008"]
