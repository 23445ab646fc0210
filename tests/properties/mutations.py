"""Token-shaped strings made from valid tokens, for the property-based middleware tests.

A case starts from a freshly signed, valid token and applies a short chain of mutations:
flipped bits in each segment, reordered, duplicated, dropped or blanked segments, JSON
re-encoded with the same content, claims changed, padding, whitespace, Unicode look-alikes,
the standard base64 alphabet, swapped algorithms, extra header parameters, truncation, or a
wholly arbitrary string. A mutation either leaves the signature as it was (the usual attack)
or re-signs with the profile's own key (what the key holder could mint: then only the claims,
the header and the allowlist decide).

Two facts are kept along the way, for the tests to rely on:

- ``signed``: the string is, byte for byte, what the profile's key signed. With an HMAC key
  nothing else can be accepted: compact serialization is canonical, so any other string is
  either refused as malformed or fails the MAC.
- ``benign``: only mutations that keep a valid token valid were applied (none, or the same
  JSON content re-encoded and re-signed), so the token must be accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jwt
from hypothesis import strategies as st

from tests.catalogue.kit import b64u, compact_json, unb64u
from tests.harness import public_pem

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
HMAC_DIGESTS: dict[str, Callable[..., Any]] = {
    "HS256": hashlib.sha256,
    "HS384": hashlib.sha384,
    "HS512": hashlib.sha512,
}
#: Characters and the ones a human (or a lax normaliser) would take for them.
LOOKALIKES = {
    "A": "\u0410",  # Cyrillic capital A
    "B": "\u0412",
    "E": "\u0415",
    "I": "\u0399",  # Greek capital iota
    "J": "\u0408",
    "a": "\u0430",
    "c": "\u0441",
    "e": "\u0435",
    "i": "\u0456",
    "o": "\u043e",
    "p": "\u0440",
    "x": "\u0445",
    "y": "\u0443",
    "0": "\uff10",  # full-width digits
    "1": "\uff11",
    "-": "\u2010",  # hyphen
    "_": "\uff3f",
    ".": "\u2024",  # one dot leader
}
WHITESPACE_AND_SEPARATORS = [
    " ",
    "\t",
    "\n",
    "\r\n",
    "\x0b",
    "\x0c",
    "\u00a0",
    "\u2028",
    "\u3000",
    "\ufeff",
    "\u200b",
    "\x00",
    ",",
    ";",
    "=",
    "+",
    "/",
    "%",
    "%2E",
    ".",
]


@dataclass(frozen=True)
class Signer:
    """Signs with a profile's key: its algorithm, or another one on request."""

    algorithm: str
    private_key: Any  # bytes for HMAC

    def sign(self, signing_input: str, algorithm: str) -> str | None:
        """A base64url signature of ``signing_input`` under ``algorithm``, if computable.

        HMAC algorithms under an asymmetric profile use the profile's public key PEM as the
        secret: the classic key-confusion forgery. ``none`` gives an empty signature.
        """
        data = signing_input.encode()
        if algorithm in HMAC_DIGESTS:
            secret = (
                self.private_key
                if isinstance(self.private_key, bytes)
                else public_pem(self.private_key).encode()
            )
            return b64u(hmac.new(secret, data, HMAC_DIGESTS[algorithm]).digest())
        if algorithm.lower() == "none":
            return ""
        if isinstance(self.private_key, bytes):
            return None
        try:
            return b64u(jwt.get_algorithm_by_name(algorithm).sign(data, self.private_key))
        except Exception:  # the key does not fit this algorithm
            return None


@dataclass(frozen=True)
class Mutated:
    """A token string, and the last strings that were signed and known valid."""

    token: str
    signed_as: str | None = None
    benign_as: str | None = None

    @classmethod
    def valid(cls, token: str) -> Mutated:
        return cls(token, token, token)

    @property
    def signed(self) -> bool:
        """Whether the string is, byte for byte, what the profile's key signed."""
        return self.token == self.signed_as

    @property
    def benign(self) -> bool:
        """Whether the string is a valid token (the original, or a benign re-encoding)."""
        return self.token == self.benign_as

    def changed_to(self, token: str) -> Mutated:
        """The string replaced without re-signing (changing it back restores the facts)."""
        return replace(self, token=token)

    def signed_to(self, token: str, *, benign: bool) -> Mutated:
        """The string replaced by a new signature; ``benign`` if its content is unchanged."""
        return Mutated(token, token, token if benign and self.benign else self.benign_as)


def segments(token: str) -> list[str]:
    return token.split(".")


def decoded(segment: str) -> bytes | None:
    try:
        return unb64u(segment)
    except (binascii.Error, ValueError):
        return None


def json_object(segment: str) -> dict[str, Any] | None:
    """The JSON object a segment holds, parsed leniently (any encoding ``json`` detects)."""
    raw = decoded(segment)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def resigned(state: Mutated, header: str, payload: str, signer: Signer, resign: bool) -> Mutated:
    """``header.payload`` with the old signature kept, or re-signed with the profile's key.

    The ``alg`` the header names is used, so a swapped algorithm is really signed with it.
    """
    parts = segments(state.token)
    if not resign:
        return state.changed_to(".".join([header, payload, *parts[2:3]]))
    header_object = json_object(header) or {}
    algorithm = header_object.get("alg")
    signature = signer.sign(f"{header}.{payload}", algorithm if isinstance(algorithm, str) else "")
    if signature is None:
        return state.changed_to(".".join([header, payload, *parts[2:3]]))
    return state.signed_to(f"{header}.{payload}.{signature}", benign=False)


# --- the mutations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keep:
    """No change (the positive control inside every chain)."""

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        return state


@dataclass(frozen=True)
class FlipBit:
    """Flip one bit of a segment's decoded bytes (or of a character if it does not decode)."""

    segment: int
    index: int
    bit: int

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        parts = segments(state.token)
        if self.segment >= len(parts) or not parts[self.segment]:
            return state
        raw = decoded(parts[self.segment])
        if raw:
            data = bytearray(raw)
            data[self.index % len(data)] ^= 1 << self.bit
            parts[self.segment] = b64u(bytes(data))
        else:
            text = parts[self.segment]
            at = self.index % len(text)
            parts[self.segment] = text[:at] + chr(ord(text[at]) ^ (1 << self.bit)) + text[at + 1 :]
        return state.changed_to(".".join(parts))


@dataclass(frozen=True)
class ReplaceCharacter:
    index: int
    character: str

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        if not state.token:
            return state
        at = self.index % len(state.token)
        return state.changed_to(state.token[:at] + self.character + state.token[at + 1 :])


@dataclass(frozen=True)
class SwapCase:
    """Swap the case of one letter (base64url is case-sensitive)."""

    index: int

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        letters = [at for at, character in enumerate(state.token) if character.isalpha()]
        if not letters:
            return state
        at = letters[self.index % len(letters)]
        token = state.token
        return state.changed_to(token[:at] + token[at].swapcase() + token[at + 1 :])


@dataclass(frozen=True)
class Lookalike:
    """Replace one character with a Unicode look-alike."""

    index: int

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        spots = [at for at, character in enumerate(state.token) if character in LOOKALIKES]
        if not spots:
            return state
        at = spots[self.index % len(spots)]
        token = state.token
        return state.changed_to(token[:at] + LOOKALIKES[token[at]] + token[at + 1 :])


@dataclass(frozen=True)
class Insert:
    """Insert whitespace, a separator or a control character."""

    index: int
    text: str

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        at = self.index % (len(state.token) + 1)
        return state.changed_to(state.token[:at] + self.text + state.token[at:])


@dataclass(frozen=True)
class Pad:
    """Append ``=`` padding to one segment."""

    segment: int
    count: int

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        parts = segments(state.token)
        if self.segment >= len(parts):
            return state
        parts[self.segment] += "=" * self.count
        return state.changed_to(".".join(parts))


@dataclass(frozen=True)
class StandardAlphabet:
    """Re-encode one segment with ``+`` and ``/`` (and padding, as ``b64encode`` writes it)."""

    segment: int

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        parts = segments(state.token)
        if self.segment >= len(parts):
            return state
        raw = decoded(parts[self.segment])
        if raw is None:
            return state
        parts[self.segment] = base64.b64encode(raw).decode()
        return state.changed_to(".".join(parts))


@dataclass(frozen=True)
class Truncate:
    keep: int

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        return state.changed_to(state.token[: self.keep % (len(state.token) + 1)])


@dataclass(frozen=True)
class Append:
    text: str

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        return state.changed_to(state.token + self.text)


@dataclass(frozen=True)
class Reorder:
    """Put the segments in another order."""

    order: tuple[int, ...]

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        parts = segments(state.token)
        if len(parts) != len(self.order):
            return state
        return state.changed_to(".".join(parts[at] for at in self.order))


@dataclass(frozen=True)
class Duplicate:
    """Insert a copy of one segment (four segments, or more)."""

    segment: int
    at: int

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        parts = segments(state.token)
        if self.segment >= len(parts):
            return state
        parts.insert(self.at % (len(parts) + 1), parts[self.segment])
        return state.changed_to(".".join(parts))


@dataclass(frozen=True)
class Drop:
    """Remove one segment, or only its content (``H..S``)."""

    segment: int
    keep_dot: bool

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        parts = segments(state.token)
        if self.segment >= len(parts):
            return state
        if self.keep_dot:
            parts[self.segment] = ""
        else:
            del parts[self.segment]
        return state.changed_to(".".join(parts))


def reencoded(value: dict[str, Any], style: str) -> bytes:
    """The same JSON object written another way."""
    if style == "spaced":
        return json.dumps(value, separators=(", ", ": ")).encode()
    if style == "sorted":
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    if style == "pretty":
        return json.dumps(value, indent=2).encode()
    if style == "escaped":
        # Every character of every name as a \\u escape: same names after decoding.
        names = {"".join(f"\\u{ord(c):04x}" for c in name): item for name, item in value.items()}
        return ("{" + ",".join(f'"{n}":{json.dumps(v)}' for n, v in names.items()) + "}").encode()
    if style == "utf-16":
        return json.dumps(value).encode("utf-16")
    if style == "bom":
        return b"\xef\xbb\xbf" + compact_json(value)
    # "duplicate": the last name repeated with its own value (same content for a last-wins
    # parser, a parser differential for a first-wins one).
    name = next(reversed(value), "x")
    return (
        compact_json(value)[:-1] + f",{json.dumps(name)}:{json.dumps(value.get(name))}}}".encode()
    )


#: Re-encodings a strict parser must take exactly as the original (when re-signed).
SAME_CONTENT_STYLES = ("spaced", "sorted", "pretty", "escaped")
REENCODING_STYLES = (*SAME_CONTENT_STYLES, "utf-16", "bom", "duplicate")


@dataclass(frozen=True)
class Reencode:
    """Write the header or the payload JSON another way, same content."""

    segment: int
    style: str
    resign: bool

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        parts = segments(state.token)
        if len(parts) < 2 or self.segment > 1:
            return state
        value = json_object(parts[self.segment])
        if value is None:
            return state
        parts[self.segment] = b64u(reencoded(value, self.style))
        result = resigned(state, parts[0], parts[1], signer, self.resign)
        if result.signed and self.style in SAME_CONTENT_STYLES:
            return state.signed_to(result.token, benign=True)
        return result


@dataclass(frozen=True)
class RelativeTime:
    """A NumericDate this many seconds from the moment the mutation is applied."""

    seconds: float

    def resolve(self) -> Any:
        value = time.time() + self.seconds
        return int(value) if float(self.seconds).is_integer() else value


DROP = "<drop>"


def with_member(
    state: Mutated, signer: Signer, segment: int, name: str, value: Any, resign: bool
) -> Mutated:
    """Set (or, with :data:`DROP`, drop) one member of the header (0) or payload (1) object."""
    parts = segments(state.token)
    if len(parts) < 2:
        return state
    members = json_object(parts[segment])
    if members is None:
        return state
    if value == DROP:
        members.pop(name, None)
    else:
        members[name] = value
    # surrogatepass: generated claim values may hold lone surrogates (strict JSON refuses them).
    encoded = b64u(json.dumps(members, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    header, payload = (encoded, parts[1]) if segment == 0 else (parts[0], encoded)
    return resigned(state, header, payload, signer, resign)


@dataclass(frozen=True)
class ChangeClaim:
    """Set (or drop) one claim, keeping the signature or re-signing."""

    name: str
    value: Any
    resign: bool

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        value = self.value.resolve() if isinstance(self.value, RelativeTime) else self.value
        return with_member(state, signer, 1, self.name, value, self.resign)


@dataclass(frozen=True)
class ChangeHeader:
    """Set (or drop) one header parameter (``alg`` included), keeping or re-signing."""

    name: str
    value: Any
    resign: bool

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        return with_member(state, signer, 0, self.name, self.value, self.resign)


ALGORITHMS = [
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS512",
    "PS256",
    "ES256",
    "ES384",
    "EdDSA",
    "none",
    "None",
    "NONE",
    "hs256",
    "HS256 ",
    "",
]


@dataclass(frozen=True)
class SwapAlgorithm:
    """Name another algorithm: keep the signature, or really sign with it (an HMAC under an
    asymmetric profile is keyed with the profile's public key: key confusion)."""

    algorithm: str
    resign: bool

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        return ChangeHeader("alg", self.algorithm, self.resign).apply(state, signer)


@dataclass(frozen=True)
class ReplaceAll:
    """A wholly arbitrary string instead of the token."""

    text: str

    def apply(self, state: Mutated, signer: Signer) -> Mutated:
        return state.changed_to(self.text)


# --- strategies ---------------------------------------------------------------------------------

positions = st.integers(0, 10_000)
segment_numbers = st.integers(0, 3)
times = st.one_of(
    st.builds(RelativeTime, st.sampled_from([-86400, -61, -1, 0, 1, 30, 300, 86400, 10**9])),
    st.builds(RelativeTime, st.floats(-1e6, 1e6)),
)
claim_values = st.one_of(
    times,
    st.sampled_from(
        [
            DROP,
            None,
            True,
            False,
            0,
            1,
            2,
            3,
            -1,
            1.0,
            1.9,
            "1",
            "2",
            "01",
            " 1 ",
            "\uff11",
            "",
            "access",
            "refresh",
            "ACCESS",
            ["access"],
            [1],
            [],
            {},
            {"id": 1},
            "1 OR 1=1",
            "\ud800",
            10**100,
            2**63,
            float("nan"),
            float("inf"),
            "9999999999",
            "abc",
        ]
    ),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
)
claim_names = st.sampled_from(
    ["user_id", "exp", "iat", "nbf", "token_type", "jti", "aud", "iss", "sub", "is_staff", "x"]
)
header_names = st.sampled_from(
    ["alg", "typ", "kid", "crit", "zip", "b64", "jku", "jwk", "x5u", "x5c", "cty", "enc"]
)
header_values = st.one_of(
    st.sampled_from(
        [
            DROP,
            "HS256",
            "HS384",
            "HS512",
            "RS256",
            "PS256",
            "ES256",
            "ES384",
            "EdDSA",
            "none",
            "None",
            "hs256",
            "HS256 ",
            "",
            None,
            True,
            256,
            ["HS256"],
            {"a": 1},
            "JWT",
            "at+jwt",
            "refresh+jwt",
            "DEF",
            ["b64"],
            ["exp"],
            [],
            "../../../../dev/null",
            "http://127.0.0.1:9/jwks",
            {"kty": "oct", "k": "AAAA"},
            "A256GCM",
        ]
    ),
    st.text(max_size=12),
)
inserted_texts = st.one_of(st.sampled_from(WHITESPACE_AND_SEPARATORS), st.text(max_size=3))

mutations = st.one_of(
    st.builds(Keep),
    st.builds(FlipBit, segment_numbers, positions, st.integers(0, 7)),
    st.builds(ReplaceCharacter, positions, st.one_of(st.sampled_from(BASE64URL), st.characters())),
    st.builds(SwapCase, positions),
    st.builds(Lookalike, positions),
    st.builds(Insert, positions, inserted_texts),
    st.builds(Pad, segment_numbers, st.integers(1, 3)),
    st.builds(StandardAlphabet, segment_numbers),
    st.builds(Truncate, positions),
    st.builds(Append, st.one_of(st.sampled_from(["=", ".", ".AAAA", "\u00e9", "\n"]), st.text())),
    st.builds(Reorder, st.permutations((0, 1, 2)).map(tuple)),
    st.builds(Duplicate, segment_numbers, positions),
    st.builds(Drop, segment_numbers, st.booleans()),
    st.builds(Reencode, st.integers(0, 1), st.sampled_from(REENCODING_STYLES), st.booleans()),
    st.builds(ChangeClaim, claim_names, claim_values, st.booleans()),
    st.builds(ChangeHeader, header_names, header_values, st.booleans()),
    st.builds(SwapAlgorithm, st.sampled_from(ALGORITHMS), st.booleans()),
    st.builds(SwapAlgorithm, st.sampled_from(ALGORITHMS), st.just(True)),
    st.builds(ReplaceAll, st.text(max_size=60)),
)
mutation_chains = st.lists(mutations, max_size=3)


def mutate(token: str, chain: list[Any], signer: Signer) -> Mutated:
    """Apply ``chain`` to a valid ``token``."""
    state = Mutated.valid(token)
    for mutation in chain:
        state = mutation.apply(state, signer)
    return state
