"""What the fuzz targets share: Django set up minimally, real keys, real settings, oracles.

Keys are derived deterministically from fixed labels (P-256 and Ed25519 private keys from a
hash), so the corpus script and the targets, separate processes, agree on them and a seed
token signed by one verifies in the other. They are fuzzing keys and nothing else.

Import this module inside ``atheris.instrument_imports()``: it sets Django up, which is
when ``channels_jwt`` is first imported, and that import must be instrumented.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import django
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from django.conf import settings as django_settings

T = TypeVar("T")

# Django first: everything below imports channels_jwt, whose settings and user model need it.
if not django_settings.configured:
    django_settings.configure(
        SECRET_KEY="fuzz-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",  # noqa: S106
        DEBUG=False,
        # The cookie source trusts the request's own origin when its Host is one of these
        # (and the origins of CSRF_TRUSTED_ORIGINS).
        ALLOWED_HOSTS=["chat.example.com", ".example.net"],
        CSRF_TRUSTED_ORIGINS=["https://*.example.org"],
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "channels_jwt"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        CHANNELS_JWT={},
        LOGGING_CONFIG=None,
    )
    django.setup()

from channels_jwt.conf import Config, Settings, activate, deactivate  # noqa: E402
from channels_jwt.config import config_of  # noqa: E402
from channels_jwt.pipeline import Pipeline  # noqa: E402
from channels_jwt.users import TokenUser, token_user  # noqa: E402

#: The order of the P-256 group (a private scalar must lie in [1, order - 1]).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_UNSUPPORTED_HEADERS = ("crit", "b64", "zip")
_ACCEPTED_TYP = ("jwt", "at+jwt", "application/jwt", "application/at+jwt")
#: Tokens in the seed corpus live this long (they are made afresh on every ``make fuzz``).
SEED_LIFETIME = 30 * 24 * 3600


def _digest(label: str) -> bytes:
    return hashlib.sha256(f"channels-jwt fuzzing key: {label}".encode()).digest()


def p256_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key derived from ``label`` (the same in every process)."""
    scalar = int.from_bytes(_digest(label), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def ed25519_key(label: str) -> ed25519.Ed25519PrivateKey:
    """An Ed25519 private key derived from ``label`` (the same in every process)."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(_digest(label))


def public_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM of ``key``'s public half."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS compact serialisation writes every segment."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """The bytes of an unpadded base64url segment."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class FuzzConfig:
    """One ``CHANNELS_JWT`` configuration under test, with the keys that sign for it."""

    name: str
    overrides: dict[str, Any]
    hmac_secret: bytes | None = None
    #: Private keys by ``kid`` (the configuration names its public keys the same way, or not).
    private_keys: dict[str, Any] = field(default_factory=dict)
    kid_map: bool = False
    settings: Settings = field(init=False)
    config: Config = field(init=False)
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.settings = Settings(self.overrides)
        self.config = config_of(self.settings)
        self.pipeline = Pipeline.for_settings(self.settings)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The allowlist."""
        return self.config.ALGORITHMS

    def public_keys(self, kid: str | None) -> list[Any]:
        """The public keys a token naming ``kid`` may be signed with, by the settings."""
        if self.kid_map and kid is not None:
            key = self.private_keys.get(kid)
            return [] if key is None else [key.public_key()]
        return [key.public_key() for key in self.private_keys.values()]

    def signature(self, algorithm: str | None, kid: str | None, signing_input: bytes) -> bytes:
        """Sign as an attacker holding what this configuration publishes, or as the issuer.

        HMAC with the configured secret, or, for an asymmetric configuration, with its public
        PEM as the secret (the classic algorithm-confusion forgery). ES256 and EdDSA with the
        real private key named by ``kid`` (else the first). Anything else gets no signature.
        """
        if algorithm in _HMAC_HASHES:
            secret = self.hmac_secret
            if secret is None:
                secret = public_pem(next(iter(self.private_keys.values()))).encode()
            return hmac.new(secret, signing_input, _HMAC_HASHES[algorithm]).digest()
        key = self.private_keys.get(kid or "") or next(iter(self.private_keys.values()), None)
        if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(signing_input)
        return b""


def _build_configs() -> list[FuzzConfig]:
    p256 = {kid: p256_key(f"p256 {kid}") for kid in ("k1", "k2")}
    eddsa = {kid: ed25519_key(f"ed25519 {kid}") for kid in ("e1", "e2")}
    hs256 = _digest("hs256 secret")
    hs512 = _digest("hs512 secret a") + _digest("hs512 secret b")
    return [
        # The defaults a simplejwt project gets: HS256, user_id + token_type, exp and iat.
        FuzzConfig(
            "hs256",
            {"ALGORITHMS": ["HS256"], "SIGNING_KEY": hs256, "USER_RESOLVER": token_user},
            hmac_secret=hs256,
        ),
        # Every optional claim rule on, and two algorithms of one family.
        FuzzConfig(
            "hs-strict",
            {
                "ALGORITHMS": ["HS384", "HS512"],
                "SIGNING_KEY": hs512,
                "AUDIENCE": ["chat", "ws"],
                "ISSUER": ["https://issuer.example.com"],
                "LEEWAY": 30,
                "MAX_TOKEN_LIFETIME": 2 * SEED_LIFETIME,
                "REQUIRED_CLAIMS": ["exp", "iat", "jti"],
                "TOKEN_TYPES": ["access", "at"],
                "USER_RESOLVER": token_user,
            },
            hmac_secret=hs512,
        ),
        # An IdP: ES256 keys named by kid, the user named by `sub` (a text field), no type.
        FuzzConfig(
            "es256-kid",
            {
                "ALGORITHMS": ["ES256"],
                "VERIFYING_KEY": {kid: public_pem(key) for kid, key in p256.items()},
                "USER_ID_CLAIM": "sub",
                "USER_ID_FIELD": "username",
                "TOKEN_TYPE_CLAIM": None,
                "USER_RESOLVER": token_user,
            },
            private_keys=dict(p256),
            kid_map=True,
        ),
        # Rotation without kid: a list of Ed25519 keys, any may verify.
        FuzzConfig(
            "eddsa-list",
            {
                "ALGORITHMS": ["EdDSA"],
                "VERIFYING_KEY": [public_pem(key) for key in eddsa.values()],
                "LEEWAY": 5,
                "USER_RESOLVER": token_user,
            },
            private_keys=dict(eddsa),
        ),
    ]


CONFIGS = _build_configs()
_LOOP = asyncio.new_event_loop()


def run(config: FuzzConfig, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion with ``config``'s settings active (one loop for all)."""
    activation = activate(config.settings)
    try:
        return _LOOP.run_until_complete(coroutine)
    finally:
        deactivate(activation)


def header_fields(header: bytes) -> tuple[str | None, str | None]:
    """``(alg, kid)`` of a header, leniently: whatever a signer would read from it."""
    try:
        value = json.loads(header)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(value, dict):
        return None, None
    alg, kid = value.get("alg"), value.get("kid")
    return (alg if isinstance(alg, str) else None), (kid if isinstance(kid, str) else None)


def sign(config: FuzzConfig, header: bytes, payload: bytes) -> str:
    """A compact JWS of ``header`` and ``payload`` as they are, signed per ``config``."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    algorithm, kid = header_fields(header)
    signature = config.signature(algorithm, kid, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


# -- The oracle: what must hold of every token the pipeline accepted ------------------------


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def genuinely_signed(config: FuzzConfig, token: str) -> bool:
    """Whether ``token`` carries a valid signature by ``config``'s real key, checked here.

    Independent of PyJWT: HMAC, ECDSA (raw ``r || s``) and Ed25519 straight from
    ``cryptography``, under an allowed algorithm and the key the settings select.
    """
    header_segment, payload_segment, signature_segment = token.split(".")
    header = json.loads(b64url_decode(header_segment))
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in config.algorithms:
        return False
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    signature = b64url_decode(signature_segment)
    if algorithm in _HMAC_HASHES:
        assert config.hmac_secret is not None
        expected = hmac.new(config.hmac_secret, signing_input, _HMAC_HASHES[algorithm]).digest()
        return hmac.compare_digest(expected, signature)
    for public_key in config.public_keys(kid):
        try:
            if algorithm == "ES256" and len(signature) == 64:
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
                return True
            if algorithm == "EdDSA":
                public_key.verify(signature, signing_input)
                return True
        except (InvalidSignature, TypeError, ValueError):
            continue
    return False


def check_accepted(
    config: FuzzConfig,
    token: str,
    claims: Mapping[str, Any],
    user: Any,
    started: float,
    finished: float,
) -> None:
    """Fail (AssertionError) unless an accepted ``token`` deserved it under ``config``.

    ``started`` and ``finished`` bracket the verification (wall clock), so the time checks
    hold whatever instant the verifier read in between.
    """
    settings = config.config
    leeway = settings.LEEWAY
    assert genuinely_signed(config, token), "accepted a token without a valid signature"
    header = json.loads(b64url_decode(token.split(".")[0]))
    payload = json.loads(b64url_decode(token.split(".")[1]))
    assert dict(claims) == payload, "claims differ from the signed payload"
    for name in _UNSUPPORTED_HEADERS:
        assert name not in header, f"accepted a header with {name!r}"
    typ = header.get("typ")
    assert typ is None or (isinstance(typ, str) and typ.lower() in _ACCEPTED_TYP), "bad typ"

    required = [*settings.REQUIRED_CLAIMS, settings.USER_ID_CLAIM]
    if settings.TOKEN_TYPE_CLAIM:
        required.append(settings.TOKEN_TYPE_CLAIM)
    for name in required:
        assert payload.get(name) is not None, f"accepted without the {name!r} claim"
    for name in ("exp", "iat", "nbf"):
        assert name not in payload or _is_number(payload[name]), f"{name} is not a number"
    assert payload["exp"] > started - leeway, "accepted an expired token"
    assert "nbf" not in payload or payload["nbf"] <= finished + leeway + 1, "nbf in the future"
    assert "iat" not in payload or payload["iat"] <= finished + leeway + 1, "iat in the future"
    if settings.TOKEN_TYPE_CLAIM:
        assert payload[settings.TOKEN_TYPE_CLAIM] in settings.TOKEN_TYPES, "wrong token type"
    audience = settings.AUDIENCE
    if audience is None:
        assert not payload.get("aud"), "accepted an audience nobody configured"
    else:
        wanted = [audience] if isinstance(audience, str) else list(audience)
        given = payload["aud"] if isinstance(payload["aud"], list) else [payload["aud"]]
        assert any(name in given for name in wanted), "audience mismatch accepted"
    issuer = settings.ISSUER
    if issuer is not None:
        assert payload.get("iss") in ([issuer] if isinstance(issuer, str) else issuer), "iss"
    if settings.MAX_TOKEN_LIFETIME is not None:
        assert payload["exp"] - payload["iat"] <= settings.MAX_TOKEN_LIFETIME, "too long-lived"
    _check_user(config, payload[settings.USER_ID_CLAIM], user)


def _check_user(config: FuzzConfig, user_id: Any, user: Any) -> None:
    """The user is the one the claim names, in the id field's own type, canonically."""
    assert isinstance(user, TokenUser), f"resolver returned {type(user).__name__}"
    if config.config.USER_ID_FIELD == "username":
        assert isinstance(user_id, str), "text user id from a non-string"
        assert user.pk == user_id, "text user id altered"
        assert user_id, "empty username"
        assert "\x00" not in user_id, "username with NUL"
        assert len(user_id) <= 150, "username longer than the field"
        return
    assert type(user.pk) is int, "integer user id not an int"
    assert (type(user_id) is int and user_id == user.pk) or (
        isinstance(user_id, str) and user_id == str(user.pk)
    ), "user id not canonical"


def now() -> float:
    """The wall clock (the verifier compares ``exp`` with it)."""
    return time.time()


class Outcomes:
    """Counts of what the target saw, printed every ``interval`` seconds (stderr)."""

    def __init__(self, label: str, interval: float = 15.0) -> None:
        self.label = label
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._next_print = time.monotonic() + interval

    def add(self, outcome: str) -> None:
        """Count one outcome; print the tally when it is due."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if time.monotonic() >= self._next_print:
            self._next_print = time.monotonic() + self.interval
            tally = " ".join(f"{name}={count}" for name, count in sorted(self.counts.items()))
            print(f"#outcomes {self.label}: {tally}", file=sys.stderr, flush=True)
