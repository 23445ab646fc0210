"""Algorithms and keys: which algorithms exist, which keys fit them, and parsing keys once.

Keys are parsed from PEM when the verifier is built (not per token), and every key is checked
against RFC 7518's minimum sizes. A ``kid`` in a token only ever selects among these keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)

#: HMAC algorithms and the minimum key size in bytes (RFC 7518 section 3.2: the hash size).
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
EDDSA_ALGORITHMS = frozenset({"EdDSA"})
ASYMMETRIC_ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_CURVES) | EDDSA_ALGORITHMS
SUPPORTED_ALGORITHMS = frozenset(HMAC_KEY_BYTES) | ASYMMETRIC_ALGORITHMS
MIN_RSA_BITS = 2048

PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
_PUBLIC_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)
_PRIVATE_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


_KeyT = TypeVar("_KeyT")


class UnusableKey(ValueError):
    """A configured key cannot be used; the message says why (it never contains the key)."""


class PrivateKeyGiven(UnusableKey):
    """A private key where a public key is expected (it belongs with the issuer only)."""


class KeyTooSmall(UnusableKey):
    """An RSA key under :data:`MIN_RSA_BITS` (RFC 7518 section 3.3)."""


def is_hmac(algorithm: str) -> bool:
    """Whether ``algorithm`` is an HMAC (shared secret) algorithm."""
    return algorithm in HMAC_KEY_BYTES


def key_fits(algorithm: str, key: PublicKey | PrivateKey) -> bool:
    """Whether an asymmetric ``key`` can be used with ``algorithm``."""
    if algorithm in RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey)
    if algorithm in EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and (
            isinstance(key.curve, EC_CURVES[algorithm])
        )
    return algorithm in EDDSA_ALGORITHMS and isinstance(
        key,
        ed25519.Ed25519PublicKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PublicKey
        | ed448.Ed448PrivateKey,
    )


def hmac_secret(value: str | bytes, algorithms: tuple[str, ...]) -> bytes:
    """Return the HMAC secret as bytes, refusing keys shorter than the largest hash in use."""
    secret = value.encode() if isinstance(value, str) else value
    needed = max(HMAC_KEY_BYTES[alg] for alg in algorithms)
    if len(secret) < needed:
        raise UnusableKey(
            f"SIGNING_KEY is {len(secret)} bytes; {'/'.join(algorithms)} needs at least {needed}"
        )
    return secret


def load_public_key(value: Any) -> PublicKey:
    """Parse a PEM public key (or accept a ``cryptography`` public key object)."""
    if isinstance(value, _PUBLIC_TYPES):
        return _sized(value)
    if isinstance(value, _PRIVATE_TYPES):
        raise PrivateKeyGiven("a private key was given where a public key is expected")
    pem = _pem_bytes(value)
    if b"PRIVATE KEY" in pem:
        raise PrivateKeyGiven("a private key was given where a public key is expected")
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise UnusableKey("not a PEM public key") from exc
    if not isinstance(key, _PUBLIC_TYPES):
        raise UnusableKey(f"unsupported key type {type(key).__name__}")
    return _sized(key)


def load_private_key(value: Any) -> PrivateKey:
    """Parse an unencrypted PEM private key (or accept a ``cryptography`` private key object)."""
    if isinstance(value, _PRIVATE_TYPES):
        return _sized(value)
    pem = _pem_bytes(value)
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise UnusableKey("not an unencrypted PEM private key") from exc
    if not isinstance(key, _PRIVATE_TYPES):
        raise UnusableKey(f"unsupported key type {type(key).__name__}")
    return _sized(key)


def _pem_bytes(value: Any) -> bytes:
    if not isinstance(value, str | bytes):
        raise UnusableKey(f"expected a PEM string, got {type(value).__name__}")
    return value.encode() if isinstance(value, str) else value


def _sized(key: _KeyT) -> _KeyT:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise KeyTooSmall(f"RSA key is {key.key_size} bits; at least {MIN_RSA_BITS} are required")
    return key


@dataclass(frozen=True)
class VerifyingKeys:
    """The configured public keys, optionally named by ``kid``.

    A token's ``kid`` selects a key only when the keys were configured as a ``{kid: pem}``
    map; an unknown ``kid`` then matches nothing. Keys configured as one PEM or a list are
    all candidates (rotation without ``kid``).
    """

    by_kid: Mapping[str, PublicKey]
    unnamed: tuple[PublicKey, ...]

    @classmethod
    def parse(cls, value: Any) -> VerifyingKeys:
        """Build from ``VERIFYING_KEY``: one PEM, a list of PEMs, or a ``{kid: pem}`` map."""
        if isinstance(value, Mapping):
            return cls({str(kid): load_public_key(pem) for kid, pem in value.items()}, ())
        if isinstance(value, list | tuple):
            return cls({}, tuple(load_public_key(pem) for pem in value))
        return cls({}, (load_public_key(value),))

    def all(self) -> tuple[PublicKey, ...]:
        """Every configured key."""
        return (*self.by_kid.values(), *self.unnamed)

    def candidates(self, algorithm: str, kid: str | None) -> list[PublicKey]:
        """The keys that may verify a token signed with ``algorithm`` and naming ``kid``."""
        keys: tuple[PublicKey, ...]
        if not self.by_kid:
            keys = self.unnamed
        elif kid is None:
            keys = tuple(self.by_kid.values())
        else:
            keys = (self.by_kid[kid],) if kid in self.by_kid else ()
        return [key for key in keys if key_fits(algorithm, key)]
