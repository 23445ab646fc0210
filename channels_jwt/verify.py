"""Verify a compact JWS with PyJWT, strictly, and translate failures into close codes.

PyJWT does the cryptography and the standard claim checks (``exp``, ``nbf``, ``iat``, ``aud``,
``iss``, required claims, minimum key lengths). Around it this module adds what PyJWT leaves to
the application: a structural pre-check (compact form, strict UTF-8 JSON objects without
duplicate keys, no ``crit``/``b64``/``zip``), an algorithm allowlist taken from settings
only, key selection by settings (a ``kid`` only picks among configured keys), strictly typed
time claims, the token type, and a lifetime cap.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from django.core.exceptions import ImproperlyConfigured

from channels_jwt.conf import Settings
from channels_jwt.exceptions import (
    AuthenticationFailed,
    TokenExpired,
    TokenInvalid,
    TokenMalformed,
)
from channels_jwt.jwks import JWKSKeys
from channels_jwt.keys import (
    PublicKey,
    UnusableKey,
    VerifyingKeys,
    hmac_secret,
    is_hmac,
)

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_UNSUPPORTED_HEADERS = ("crit", "b64", "zip")
_TIME_CLAIMS = ("exp", "nbf", "iat")
#: 10000-01-01T00:00:00Z: later instants cannot be represented as a ``datetime``.
_MAX_NUMERIC_DATE = 253402300800


@dataclass(frozen=True)
class VerificationRules:
    """Everything the verifier needs, resolved from settings once."""

    algorithms: tuple[str, ...]
    hmac_secret: bytes | None
    verifying_keys: VerifyingKeys | None
    audience: str | list[str] | None
    issuer: str | list[str] | None
    leeway: float
    required_claims: tuple[str, ...]
    max_lifetime: float | None
    token_type_claim: str | None
    token_types: tuple[str, ...]
    max_token_bytes: int
    jwks: JWKSKeys | None = None


class TokenVerifier:
    """Verifies tokens against one set of :class:`VerificationRules`."""

    def __init__(self, rules: VerificationRules) -> None:
        self.rules = rules
        self._pyjwt = jwt.PyJWT(
            options={
                "require": list(rules.required_claims),
                "enforce_minimum_key_length": True,
            }
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, require_jti: bool = False) -> TokenVerifier:
        """Build a verifier from settings already validated by the system checks.

        Raises ``ImproperlyConfigured`` if a key cannot be used.
        """
        algorithms = settings.ALGORITHMS
        secret: bytes | None = None
        keys: VerifyingKeys | None = None
        jwks: JWKSKeys | None = None
        try:
            if is_hmac(algorithms[0]):
                secret = hmac_secret(settings.SIGNING_KEY or b"", algorithms)
            elif settings.JWK_URL:
                jwks = JWKSKeys(
                    settings.JWK_URL,
                    cache_seconds=settings.JWKS_CACHE_SECONDS,
                    timeout=settings.JWKS_TIMEOUT_SECONDS,
                )
            else:
                keys = VerifyingKeys.parse(settings.VERIFYING_KEY)
        except UnusableKey as exc:
            raise ImproperlyConfigured(f"CHANNELS_JWT key unusable: {exc}") from exc
        required = [*settings.REQUIRED_CLAIMS, settings.USER_ID_CLAIM]
        if settings.TOKEN_TYPE_CLAIM:
            required.append(settings.TOKEN_TYPE_CLAIM)
        if require_jti:
            required.append("jti")
        return cls(
            VerificationRules(
                algorithms=algorithms,
                hmac_secret=secret,
                verifying_keys=keys,
                jwks=jwks,
                audience=settings.AUDIENCE,
                issuer=settings.ISSUER,
                leeway=settings.LEEWAY,
                required_claims=tuple(dict.fromkeys(required)),
                max_lifetime=settings.MAX_TOKEN_LIFETIME,
                token_type_claim=settings.TOKEN_TYPE_CLAIM,
                token_types=settings.TOKEN_TYPES,
                max_token_bytes=settings.MAX_TOKEN_BYTES,
            )
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims of ``token`` or raise an ``AuthenticationFailed``.

        For verifiers with static keys only; a JWKS verifier must use :meth:`averify`.
        """
        algorithm, kid = self._inspect(token)
        if self.rules.jwks is not None:
            raise ImproperlyConfigured("a JWKS verifier must be called with averify()")
        return self._verified(token, algorithm, self._static_keys(algorithm, kid))

    async def averify(self, token: str) -> dict[str, Any]:
        """Like :meth:`verify`; JWKS keys are fetched off the event loop when needed.

        Raises :class:`KeyUnavailable` when the JWKS cannot provide a key for the token.
        """
        algorithm, kid = self._inspect(token)
        jwks = self.rules.jwks
        if jwks is None:
            keys = self._static_keys(algorithm, kid)
        else:
            keys = await jwks.candidates(algorithm, kid)
        return self._verified(token, algorithm, keys)

    def _inspect(self, token: str) -> tuple[str, str | None]:
        """The structural and header checks, before any key is looked up: (alg, kid)."""
        rules = self.rules
        if len(token) > rules.max_token_bytes:
            raise TokenMalformed("token larger than MAX_TOKEN_BYTES")
        if not _COMPACT_JWS.fullmatch(token):
            raise TokenMalformed("not a compact JWS")
        header_segment, payload_segment, _ = token.split(".")
        header = _json_object(header_segment, "header")
        payload = _json_object(payload_segment, "payload")

        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in rules.algorithms:
            raise TokenInvalid("algorithm not allowed")
        for name in _UNSUPPORTED_HEADERS:
            if name in header:
                raise TokenMalformed(f"unsupported header parameter {name!r}")
        kid = header.get("kid")
        if "kid" in header and not isinstance(kid, str):
            raise TokenMalformed("kid is not a string")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
            raise TokenInvalid("typ header is not JWT or at+jwt")
        for claim in _TIME_CLAIMS:
            if claim in payload and not _is_numeric_date(payload[claim]):
                raise TokenInvalid(f"{claim} is not a NumericDate")
        return algorithm, kid

    def _static_keys(self, algorithm: str, kid: str | None) -> Sequence[bytes | PublicKey]:
        rules = self.rules
        if rules.hmac_secret is not None:
            return [rules.hmac_secret]
        assert rules.verifying_keys is not None
        return rules.verifying_keys.candidates(algorithm, kid)

    def _verified(
        self, token: str, algorithm: str, keys: Sequence[bytes | PublicKey]
    ) -> dict[str, Any]:
        """Decode with the first key whose signature matches; then type and lifetime."""
        rules = self.rules
        if not keys:
            raise TokenInvalid("no configured key matches the token")
        for key in keys:
            try:
                claims: dict[str, Any] = self._pyjwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=rules.audience,
                    issuer=rules.issuer,
                    leeway=rules.leeway,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise translate(exc) from exc
            self._check_type_and_lifetime(claims)
            return claims
        raise TokenInvalid("signature verification failed")

    def _check_type_and_lifetime(self, claims: Mapping[str, Any]) -> None:
        rules = self.rules
        if rules.token_type_claim is not None:
            token_type = claims.get(rules.token_type_claim)
            if not isinstance(token_type, str) or token_type not in rules.token_types:
                raise TokenInvalid("wrong token type")
        if rules.max_lifetime is not None:
            expires, issued = claims.get("exp"), claims.get("iat")
            if expires is None or issued is None or expires - issued > rules.max_lifetime:
                raise TokenInvalid("token lifetime exceeds MAX_TOKEN_LIFETIME")


def translate(exc: jwt.PyJWTError) -> AuthenticationFailed:
    """Map a PyJWT exception onto the matching :class:`AuthenticationFailed`."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return TokenExpired("token expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return TokenInvalid("token not yet valid")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return TokenInvalid(f"required claim {exc.claim!r} missing")
    if isinstance(exc, jwt.InvalidAudienceError):
        return TokenInvalid("audience mismatch")
    if isinstance(exc, jwt.InvalidIssuerError):
        return TokenInvalid("issuer mismatch")
    if isinstance(exc, jwt.InvalidSignatureError):
        return TokenInvalid("signature verification failed")
    if isinstance(exc, jwt.DecodeError):
        return TokenMalformed("token could not be decoded")
    return TokenInvalid(f"token rejected ({type(exc).__name__})")


def _json_object(segment: str, part: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = _STRICT_JSON.decode(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise TokenMalformed(f"{part} is not base64url-encoded UTF-8 JSON") from exc
    if not isinstance(value, dict):
        raise TokenMalformed(f"{part} is not a JSON object")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: Built once: ``json.loads`` with hooks would build a decoder for every segment.
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)


def _is_numeric_date(value: Any) -> bool:
    return type(value) in (int, float) and abs(value) < _MAX_NUMERIC_DATE
