"""Verify a compact JWS strictly; every refusal is an AuthenticationFailed with its close code.

PyJWT's algorithm implementations check the signature (the cryptography is never ours). Around
them this module parses the token once, strictly (compact form, canonical base64url, strict
UTF-8 JSON objects without duplicate keys, no ``crit``/``b64``/``zip``), takes the algorithm
allowlist from settings only, selects keys by settings (a ``kid`` only picks among configured
keys), and validates the claims with the rules of ``jwt.decode`` (required claims, ``exp``,
``nbf``, ``iat``, ``iss``, ``aud``, ``sub``, ``jti``; tested against it case by case), plus strictly
typed time claims, the token type and a lifetime cap. ``jwt.decode`` itself would parse every
token a second time, which costs more than the HMAC it checks.
"""

from __future__ import annotations

import binascii
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from sys import intern
from typing import Any, NamedTuple

import jwt
from django.core.exceptions import ImproperlyConfigured

from channels_jwt.conf import Config
from channels_jwt.exceptions import (
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

#: The signature may be empty: an unsecured JWS (RFC 7515 appendix A.5) is a compact JWS, refused
#: for its algorithm (or, under an allowed one, as a bad signature), never as malformed.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_UNSUPPORTED_HEADERS = ("crit", "b64", "zip")
_TIME_CLAIMS = ("exp", "nbf", "iat")
_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: The characters that may end a segment of length 4n+2 (4 unused bits) or 4n+3 (2 unused bits).
_CANONICAL_LAST = {2: _BASE64URL[::16], 3: _BASE64URL[::4]}
_KNOWN_HEADERS = 64
_KNOWN_HEADER_CHARS = 512
#: 10000-01-01T00:00:00Z: later instants cannot be represented as a ``datetime``.
_MAX_NUMERIC_DATE = 253402300800
#: Deepest nesting of objects and arrays in a header or payload (the top-level object is 1).
#: Real tokens nest 2-4 deep. A fixed bound gives every Python the same answer: 3.11's parser
#: stops near 1,000 with a RecursionError, 3.12+ parses far deeper.
MAX_JSON_DEPTH = 32
_JSON_STRUCTURE = re.compile(r'[\[\]{}"\\]')


class ParsedToken(NamedTuple):
    """A token that passed the structural checks, not yet verified."""

    algorithm: str
    kid: str | None
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class VerificationRules:
    """Everything the verifier needs, resolved from settings once."""

    algorithms: tuple[str, ...]
    hmac_secret: bytes | None = field(repr=False)
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
        self._algorithms = {name: jwt.get_algorithm_by_name(name) for name in rules.algorithms}
        # Header segments already checked, each with its (alg, kid): an issuer uses one header
        # per key, so almost every token skips decoding its header. Bounded, never evicted:
        # junk headers fail the checks and are never remembered.
        self._headers: dict[str, tuple[str, str | None]] = {}
        # PyJWT's HMAC key preparation tries to load the secret as a public key (so that a
        # public key can never serve as an HMAC secret): worth doing once, not per token.
        self._hmac_key: bytes | None = None
        if rules.hmac_secret is not None:
            try:
                secret = hmac_secret(rules.hmac_secret, rules.algorithms)
            except UnusableKey as exc:
                raise ImproperlyConfigured(str(exc)) from exc
            self._hmac_key = self._algorithms[rules.algorithms[0]].prepare_key(secret)

    @classmethod
    def from_config(cls, config: Config, *, require_jti: bool = False) -> TokenVerifier:
        """Build a verifier for ``config`` (``require_jti``: refuse tokens without ``jti``).

        Raises ``ImproperlyConfigured`` if a key cannot be used.
        """
        algorithms = config.ALGORITHMS
        secret: bytes | None = None
        jwks: JWKSKeys | None = None
        try:
            if is_hmac(algorithms[0]):
                secret = hmac_secret(config.SIGNING_KEY or b"", algorithms)
            elif config.JWK_URL:
                jwks = JWKSKeys(
                    config.JWK_URL,
                    cache_seconds=config.JWKS_CACHE_SECONDS,
                    timeout=config.JWKS_TIMEOUT_SECONDS,
                )
        except UnusableKey as exc:
            raise ImproperlyConfigured(f"CHANNELS_JWT key unusable: {exc}") from exc
        required = [*config.REQUIRED_CLAIMS, config.USER_ID_CLAIM]
        if config.TOKEN_TYPE_CLAIM:
            required.append(config.TOKEN_TYPE_CLAIM)
        if require_jti:
            required.append("jti")
        return cls(
            VerificationRules(
                algorithms=algorithms,
                hmac_secret=secret,
                verifying_keys=config.verifying_keys,
                jwks=jwks,
                audience=config.AUDIENCE,
                issuer=config.ISSUER,
                leeway=config.LEEWAY,
                required_claims=tuple(dict.fromkeys(required)),
                max_lifetime=config.MAX_TOKEN_LIFETIME,
                token_type_claim=config.TOKEN_TYPE_CLAIM,
                token_types=config.TOKEN_TYPES,
                max_token_bytes=config.MAX_TOKEN_BYTES,
            )
        )

    @classmethod
    def of(cls, config: Config) -> TokenVerifier:
        """The verifier of ``config``, built once.

        ``jti`` is required whenever a revocation check or live revocation needs it.
        """
        require_jti = config.REVOCATION_CHECK is not None or config.LIVE_REVOCATION
        return config.derived("verifier", lambda: cls.from_config(config, require_jti=require_jti))

    def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims of ``token`` or raise an ``AuthenticationFailed``.

        For verifiers with static keys only; a JWKS verifier must use :meth:`averify`.
        """
        parsed = self._inspect(token)
        if self.rules.jwks is not None:
            raise ImproperlyConfigured("a JWKS verifier must be called with averify()")
        return self._verified(parsed, self._static_keys(parsed.algorithm, parsed.kid))

    async def averify(self, token: str) -> dict[str, Any]:
        """Like :meth:`verify`; JWKS keys are fetched off the event loop when needed.

        Raises :class:`KeyUnavailable` when the JWKS cannot provide a key for the token.
        """
        parsed = self._inspect(token)
        jwks = self.rules.jwks
        if jwks is None:
            keys = self._static_keys(parsed.algorithm, parsed.kid)
        else:
            keys = await jwks.candidates(parsed.algorithm, parsed.kid)
        return self._verified(parsed, keys)

    def _inspect(self, token: str) -> ParsedToken:
        """The structural and header checks, before any key is looked up."""
        rules = self.rules
        if len(token) > rules.max_token_bytes:
            raise TokenMalformed("token larger than MAX_TOKEN_BYTES")
        if not _COMPACT_JWS.fullmatch(token):
            raise TokenMalformed("not a compact JWS")
        header_segment, payload_segment, signature_segment = token.split(".")
        known_header = self._headers.get(header_segment)
        if known_header is None:
            algorithm, kid = self._header(header_segment)
        else:
            algorithm, kid = known_header
        payload = _json_object(payload_segment, "payload")
        for claim in _TIME_CLAIMS:
            if claim in payload and not _is_numeric_date(payload[claim]):
                raise TokenInvalid(f"{claim} is not a NumericDate")
        signing_input = token[: len(header_segment) + 1 + len(payload_segment)].encode("ascii")
        signature = _base64url(signature_segment, "signature") if signature_segment else b""
        return ParsedToken(algorithm, kid, payload, signing_input, signature)

    def _header(self, segment: str) -> tuple[str, str | None]:
        """Check a header segment; remember good ones (a few per key, however many tokens)."""
        header = _json_object(segment, "header")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.rules.algorithms:
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
        if len(self._headers) < _KNOWN_HEADERS and len(segment) <= _KNOWN_HEADER_CHARS:
            self._headers[segment] = (algorithm, kid)
        return algorithm, kid

    def _static_keys(self, algorithm: str, kid: str | None) -> Sequence[bytes | PublicKey]:
        rules = self.rules
        if self._hmac_key is not None:
            return [self._hmac_key]
        assert rules.verifying_keys is not None
        return rules.verifying_keys.candidates(algorithm, kid)

    def _verified(self, token: ParsedToken, keys: Sequence[bytes | PublicKey]) -> dict[str, Any]:
        """Check the signature with the first key that matches; then the claims."""
        if not keys:
            raise TokenInvalid("no configured key matches the token")
        if not any(self._signed_with(token, key) for key in keys):
            raise TokenInvalid("signature verification failed")
        claims = token.claims
        self._check_claims(claims)
        self._check_type_and_lifetime(claims)
        return claims

    def _signed_with(self, token: ParsedToken, key: bytes | PublicKey) -> bool:
        algorithm = self._algorithms[token.algorithm]
        # The HMAC key was prepared and length-checked once, in __init__; public keys are key
        # objects that fit the algorithm and were size-checked when loaded (keys.py, jwks.py),
        # for which prepare_key only confirms the type.
        prepared = key if key is self._hmac_key else algorithm.prepare_key(key)
        return bool(algorithm.verify(token.signing_input, prepared, token.signature))

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        """The registered-claim rules of ``jwt.decode``, in its order (so its precedence)."""
        rules = self.rules
        for name in rules.required_claims:
            if claims.get(name) is None:
                raise TokenInvalid(f"required claim {name!r} missing")
        now, leeway = time.time(), rules.leeway
        # The time claims are already known to be JSON numbers; PyJWT compares whole seconds.
        if "iat" in claims and int(claims["iat"]) > now + leeway:
            raise TokenInvalid("token not yet valid (iat)")
        if "nbf" in claims and int(claims["nbf"]) > now + leeway:
            raise TokenInvalid("token not yet valid")
        if "exp" in claims and int(claims["exp"]) <= now - leeway:
            raise TokenExpired("token expired")
        if rules.issuer is not None:
            _check_issuer(claims, rules.issuer)
        _check_audience(claims, rules.audience)
        if "sub" in claims and not isinstance(claims["sub"], str):
            raise TokenInvalid("sub is not a string")
        if "jti" in claims and not isinstance(claims["jti"], str):
            raise TokenInvalid("jti is not a string")

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


def _check_issuer(claims: Mapping[str, Any], issuer: str | list[str]) -> None:
    if "iss" not in claims:
        raise TokenInvalid("required claim 'iss' missing")
    value = claims["iss"]
    if not isinstance(value, str):
        raise TokenInvalid("iss is not a string")
    if value != issuer if isinstance(issuer, str) else value not in issuer:
        raise TokenInvalid("issuer mismatch")


def _check_audience(claims: Mapping[str, Any], audience: str | list[str] | None) -> None:
    value = claims.get("aud")
    if audience is None:
        if value:
            raise TokenInvalid("token has an audience and AUDIENCE is not set")
        return
    if not value:
        raise TokenInvalid("required claim 'aud' missing")
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise TokenInvalid("aud is not a string or a list of strings")
    wanted = [audience] if isinstance(audience, str) else audience
    if not any(item in values for item in wanted):
        raise TokenInvalid("audience mismatch")


def _base64url(segment: str, part: str) -> bytes:
    """Decode an unpadded base64url segment, refusing non-canonical encodings."""
    # Unused trailing bits must be zero, as in PyJWT: one token, one encoding. (The caller
    # has checked the alphabet; a length of 4n+1 is refused by the decoder.)
    if segment[-1] not in _CANONICAL_LAST.get(len(segment) % 4, _BASE64URL):
        raise TokenMalformed(f"{part} is not canonical base64url")
    # Each failure is raised outside its ``except`` block: the decoder's exception holds the
    # token's bytes (``.object``, ``.doc``) and would ride along as ``__context__``.
    # base64.urlsafe_b64decode's own steps, without its per-call conversions.
    standard = segment.replace("-", "+").replace("_", "/")
    try:
        return binascii.a2b_base64(standard + "=" * (-len(segment) % 4))
    except binascii.Error:
        pass
    raise TokenMalformed(f"{part} is not base64url-encoded")


_NOT_JSON = object()


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json(text: str) -> Any:
    try:
        return _STRICT_JSON.decode(text)
    except ValueError:
        return _NOT_JSON


def _json_object(segment: str, part: str) -> dict[str, Any]:
    raw = _base64url(segment, part)
    text = _utf8(raw)
    if text is None:
        raise TokenMalformed(f"{part} is not UTF-8 JSON")
    if _nested_deeper_than(MAX_JSON_DEPTH, text):
        raise TokenMalformed(f"{part} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    value = _json(text)
    if value is _NOT_JSON:
        raise TokenMalformed(f"{part} is not UTF-8 JSON")
    if not isinstance(value, dict):
        raise TokenMalformed(f"{part} is not a JSON object")
    return value


def _nested_deeper_than(limit: int, text: str) -> bool:
    """Whether brackets outside JSON strings nest deeper than ``limit``, in linear time.

    Text that is not JSON may get either answer: the parser refuses it anyway.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_STRUCTURE.finditer(text):
        position = match.start()
        if position == escaped_at:
            continue
        char = text[position]
        if in_string:
            if char == "\\":
                escaped_at = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Interned keys: every open connection's claims then share "exp", "user_id", ... instead
    # of holding copies (interned strings are freed again once no longer used).
    result = {intern(key): value for key, value in pairs}
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: Built once: ``json.loads`` with hooks would build a decoder for every segment.
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)


def _is_numeric_date(value: Any) -> bool:
    return type(value) in (int, float) and abs(value) < _MAX_NUMERIC_DATE
