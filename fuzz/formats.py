"""How fuzz inputs (bytes) map onto handshakes and tokens, both ways.

The targets decode; the corpus script encodes real handshakes and tokens with the same
functions, so a seed means exactly what it was written from. Both formats are line- or
field-oriented rather than a stream of integers, so libFuzzer's byte mutations (insert,
erase, copy a part, cross two inputs over) produce structurally plausible handshakes.

Extraction input: one flags byte (source order, cookie name, raw scope, header scheme, token
cap, and ``wss`` instead of ``ws`` as the scope's scheme), then lines separated by ``\\n``,
each starting with a kind byte: ``q`` the query string, ``s`` a ``Sec-WebSocket-Protocol``
header, ``a`` an ``Authorization`` header, ``c`` a ``Cookie`` header, ``o`` an ``Origin``
header, ``h`` any header as ``name:value``, ``p`` a raw entry of the scope's
``subprotocols`` list (used only when the flags ask for a scope no server would build).

Verification input: a configuration byte, a mode byte, then either the token itself
(mode even) or a header and a payload JSON separated by NUL (mode odd), which the target
encodes and signs with the configuration's real key for the header's ``alg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Orders of ``TOKEN_SOURCES`` the extraction flags choose from (low three bits).
SOURCE_ORDERS: tuple[tuple[str, ...], ...] = (
    ("subprotocol", "query"),
    ("query", "subprotocol"),
    ("subprotocol", "query", "header", "cookie"),
    ("cookie", "header", "query", "subprotocol"),
    ("header",),
    ("cookie",),
    ("subprotocol",),
    ("query", "header"),
)
FLAG_COOKIE_NAME = 0x08
FLAG_RAW_SCOPE = 0x10
FLAG_OTHER_SCHEME = 0x20
FLAG_SMALL_MAX = 0x40
FLAG_SECURE_SCHEME = 0x80

_HEADER_KINDS = {
    b"s": b"sec-websocket-protocol",
    b"a": b"authorization",
    b"c": b"cookie",
    b"o": b"origin",
}


@dataclass
class Handshake:
    """The parts of a WebSocket scope the extraction looks at, as the fuzz input gave them."""

    flags: int = 0
    query_string: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    raw_subprotocols: list[str] = field(default_factory=list)

    @property
    def sources(self) -> tuple[str, ...]:
        """The ``TOKEN_SOURCES`` order the flags select."""
        return SOURCE_ORDERS[self.flags & 0x07]

    @property
    def scheme(self) -> str:
        """``scope["scheme"]``: ``"wss"`` or ``"ws"``, as the flags say."""
        return "wss" if self.flags & FLAG_SECURE_SCHEME else "ws"

    @property
    def raw_scope(self) -> bool:
        """Whether ``subprotocols`` come from ``p`` lines instead of the headers."""
        return bool(self.flags & FLAG_RAW_SCOPE)


def decode_handshake(data: bytes) -> Handshake:
    """The handshake an extraction fuzz input describes (never raises)."""
    if not data:
        return Handshake()
    handshake = Handshake(flags=data[0])
    for line in data[1:].split(b"\n"):
        kind, rest = line[:1], line[1:]
        if kind == b"q":
            handshake.query_string = rest
        elif kind in _HEADER_KINDS:
            handshake.headers.append((_HEADER_KINDS[kind], rest))
        elif kind == b"h":
            name, _, value = rest.partition(b":")
            handshake.headers.append((name, value))
        elif kind == b"p":
            handshake.raw_subprotocols.append(rest.decode("latin-1"))
    return handshake


def encode_handshake(handshake: Handshake) -> bytes:
    """The fuzz input for ``handshake`` (for the seed corpus; no value may contain ``\\n``)."""
    names = {name: kind for kind, name in _HEADER_KINDS.items()}
    lines = [b"q" + handshake.query_string]
    for name, value in handshake.headers:
        kind = names.get(name)
        lines.append(kind + value if kind else b"h" + name + b":" + value)
    lines.extend(b"p" + entry.encode("latin-1") for entry in handshake.raw_subprotocols)
    return bytes([handshake.flags]) + b"\n".join(lines)


@dataclass(frozen=True)
class VerifyCase:
    """A verification fuzz input: which configuration, and a token or parts to sign."""

    config: int
    token: str | None = None
    header: bytes = b""
    payload: bytes = b""


def decode_verify_case(data: bytes, configs: int) -> VerifyCase:
    """The case a verification fuzz input describes (never raises)."""
    config = data[0] % configs if data else 0
    mode = data[1] if len(data) > 1 else 0
    rest = data[2:]
    if mode % 2 == 0:
        return VerifyCase(config, token=rest.decode("latin-1"))
    header, _, payload = rest.partition(b"\x00")
    return VerifyCase(config, header=header, payload=payload)


def encode_token_case(config: int, token: str) -> bytes:
    """A fuzz input that hands ``token`` as it is to configuration ``config``."""
    return bytes([config, 0]) + token.encode("latin-1")


def encode_signing_case(config: int, header: bytes, payload: bytes) -> bytes:
    """A fuzz input that has configuration ``config``'s key sign ``header`` and ``payload``."""
    return bytes([config, 1]) + header + b"\x00" + payload
