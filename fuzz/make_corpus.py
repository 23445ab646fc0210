"""Write the seed corpora of both fuzz targets: real tokens and handshakes, and mutations.

Run by ``make fuzz`` before each run (the tokens carry a live ``exp``):
``python -m fuzz.make_corpus [DIRECTORY]`` writes ``DIRECTORY/extract`` and
``DIRECTORY/verify`` (default ``fuzz/corpus``), replacing what was there. Files are named
by the SHA-1 of their content, as libFuzzer names the inputs it keeps.

Verification seeds, for every configuration: valid tokens (as strings, and as header and
payload for the target to sign), then the same with a bit flipped in each segment, the
segments reordered, the JSON re-encoded, claims changed without re-signing, ``alg: none``,
the public key used as an HMAC secret, mistyped and missing claims, duplicate keys,
unsupported header parameters, unknown ``kid`` and padding. Extraction seeds: a token in
each source, in several at once, repeated, encoded, oversized, non-ASCII, and the cookie
from the request's own origin (``ws`` and ``wss``), a CSRF-trusted one and foreign ones
(another port, a sibling host, another site).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from fuzz.formats import (
    FLAG_COOKIE_NAME,
    FLAG_OTHER_SCHEME,
    FLAG_RAW_SCOPE,
    FLAG_SECURE_SCHEME,
    FLAG_SMALL_MAX,
    SOURCE_ORDERS,
    Handshake,
    encode_handshake,
    encode_signing_case,
    encode_token_case,
)
from fuzz.harness import CONFIGS, SEED_LIFETIME, FuzzConfig, b64url, sign

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "corpus"


def compact(value: Any) -> bytes:
    """JSON as JWT libraries write it (no spaces)."""
    return json.dumps(value, separators=(",", ":")).encode()


def valid_parts(config: FuzzConfig, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A header and claims that ``config`` accepts (the ``index``-th of a few variants)."""
    now = int(time.time())
    algorithm = config.algorithms[index % len(config.algorithms)]
    header: dict[str, Any] = {"alg": algorithm, "typ": "JWT"}
    claims: dict[str, Any] = {"exp": now + SEED_LIFETIME, "iat": now - 10}
    settings = config.config
    if settings.TOKEN_TYPE_CLAIM:
        claims[settings.TOKEN_TYPE_CLAIM] = settings.TOKEN_TYPES[index % len(settings.TOKEN_TYPES)]
    if settings.USER_ID_FIELD == "username":
        claims[settings.USER_ID_CLAIM] = ["alice", "bob.smith@example.com"][index % 2]
    else:
        claims[settings.USER_ID_CLAIM] = [str(42 + index), 7 + index][index % 2]
    claims["jti"] = hashlib.sha256(f"{config.name} {index}".encode()).hexdigest()[:32]
    if settings.AUDIENCE:
        claims["aud"] = ["chat", ["ws", "other"]][index % 2]
    if settings.ISSUER:
        claims["iss"] = "https://issuer.example.com"
    if config.private_keys:
        kids = list(config.private_keys)
        header["kid"] = kids[index % len(kids)]
    return header, claims


def flip_bit(token: str, segment: int) -> str:
    """``token`` with one bit flipped in the middle of segment ``segment`` (still base64url)."""
    parts = token.split(".")
    target = parts[segment]
    middle = len(target) // 2
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flipped = alphabet[alphabet.index(target[middle]) ^ 1]
    parts[segment] = target[:middle] + flipped + target[middle + 1 :]
    return ".".join(parts)


def verify_seeds(config_index: int, config: FuzzConfig) -> Iterator[bytes]:
    """The verification seeds of one configuration."""
    now = int(time.time())
    for index in range(2):
        header, claims = valid_parts(config, index)
        header_json, claims_json = compact(header), compact(claims)
        token = sign(config, header_json, claims_json)
        yield encode_token_case(config_index, token)
        yield encode_signing_case(config_index, header_json, claims_json)
        # Bit flips in each segment, segments reordered, padding added.
        for segment in range(3):
            yield encode_token_case(config_index, flip_bit(token, segment))
        head, body, signature = token.split(".")
        for order in ((body, head, signature), (head, signature, body), (signature, body, head)):
            yield encode_token_case(config_index, ".".join(order))
        yield encode_token_case(config_index, f"{head}==.{body}.{signature}")
        yield encode_token_case(config_index, f"{head}.{body}")
        yield encode_token_case(config_index, f"{head}.{body}.{signature}.{signature}")
        # The same claims re-encoded (spaces, another key order): a valid signature over it.
        spaced = json.dumps(dict(reversed(list(claims.items())))).encode()
        yield encode_signing_case(config_index, json.dumps(header).encode(), spaced)
        # Claims changed without re-signing.
        forged = b64url(compact({**claims, config.config.USER_ID_CLAIM: "1"}))
        yield encode_token_case(config_index, f"{head}.{forged}.{signature}")
        yield from _claim_mutations(config_index, header, claims, now)
        yield from _header_mutations(config_index, header, claims)


def _claim_mutations(
    config_index: int, header: dict[str, Any], claims: dict[str, Any], now: int
) -> Iterator[bytes]:
    """Signed with the real key, but with claims a strict verifier must refuse."""
    header_json = compact(header)
    variants: list[dict[str, Any]] = [
        {**claims, "exp": now - 100},
        {**claims, "exp": str(claims["exp"])},
        {**claims, "exp": True},
        {**claims, "exp": float(claims["exp"]) + 0.5},
        {**claims, "exp": 10**20},
        {**claims, "exp": None},
        {**claims, "iat": now + 3600},
        {**claims, "nbf": now + 3600},
        {**claims, "nbf": "0"},
        {**claims, "aud": "nobody"},
        {**claims, "aud": 5},
        {**claims, "aud": ["chat", 1]},
        {**claims, "aud": []},
        {**claims, "iss": "https://evil.example.com"},
        {**claims, "iss": 5},
        {**claims, "iss": ["https://issuer.example.com"]},
        {**claims, "jti": 5},
        {**claims, "sub": 5},
        {**claims, "token_type": "refresh"},
        {**claims, "user_id": True},
        {**claims, "user_id": " 42"},
        {**claims, "user_id": "\uff14\uff12"},
        {**claims, "user_id": 2**63},
        {**claims, "user_id": "x" * 200},
        {**claims, "sub": "a\u0000b"},
        {**claims, "iat": claims["iat"] - 3 * SEED_LIFETIME},
        {name: value for name, value in claims.items() if name != "exp"},
        {name: value for name, value in claims.items() if name != "iat"},
        {name: value for name, value in claims.items() if name != "jti"},
    ]
    for variant in variants:
        yield encode_signing_case(config_index, header_json, compact(variant))
    duplicate = compact(claims)[:-1] + b',"exp":' + str(now - 100).encode() + b"}"
    yield encode_signing_case(config_index, header_json, duplicate)
    yield encode_signing_case(config_index, header_json, b"[1,2]")
    yield encode_signing_case(config_index, header_json, b'{"exp":NaN}')
    yield encode_signing_case(config_index, header_json, b"[" * 5000 + b"]" * 5000)
    yield encode_signing_case(config_index, header_json, b'{"exp":1e400}')
    yield encode_signing_case(config_index, header_json, b"\xff\xfe{}")


def _header_mutations(
    config_index: int, header: dict[str, Any], claims: dict[str, Any]
) -> Iterator[bytes]:
    """Signed (where the algorithm allows) with headers a strict verifier must refuse."""
    claims_json = compact(claims)
    variants: list[dict[str, Any]] = [
        {**header, "alg": "none"},
        {**header, "alg": "HS256"},
        {**header, "alg": "HS512"},
        {**header, "alg": "ES256"},
        {**header, "alg": "EdDSA"},
        {**header, "alg": "RS256"},
        {**header, "alg": ["HS256"]},
        {**header, "kid": "unknown"},
        {**header, "kid": 1},
        {**header, "typ": "JOSE"},
        {**header, "typ": "at+JWT"},
        {**header, "crit": ["exp"]},
        {**header, "b64": False},
        {**header, "zip": "DEF"},
        {**header, "jku": "https://evil.example.com/jwks"},
        {name: value for name, value in header.items() if name != "alg"},
    ]
    for variant in variants:
        yield encode_signing_case(config_index, compact(variant), claims_json)
    yield encode_signing_case(config_index, b'{"alg":"HS256","alg":"none"}', claims_json)


def extraction_seeds() -> Iterator[bytes]:
    """Handshakes carrying a real token in every way a client might, and many wrong ways."""
    token = sign(CONFIGS[0], *map(compact, valid_parts(CONFIGS[0], 0)))
    raw = token.encode()
    every_source = 0x02  # subprotocol, query, header, cookie
    cookie = every_source | FLAG_COOKIE_NAME
    cases: list[Handshake] = [
        Handshake(0, headers=[(b"sec-websocket-protocol", b"chat, access_token, " + raw)]),
        Handshake(0, headers=[(b"sec-websocket-protocol", b"access_token")]),
        Handshake(0, headers=[(b"sec-websocket-protocol", b"access_token, access_token, " + raw)]),
        Handshake(0, headers=[(b"sec-websocket-protocol", b",".join([b"p"] * 17))]),
        Handshake(
            0,
            headers=[
                (b"sec-websocket-protocol", b"access_token"),
                (b"Sec-WebSocket-Protocol", raw),
            ],
        ),
        Handshake(0, query_string=b"room=1&token=" + raw),
        Handshake(0, query_string=b"tok%65n=" + raw + b"&token=" + raw),
        Handshake(0, query_string=b"token=" + raw.replace(b".", b"%2E")),
        Handshake(0, query_string=b"token+=x&token=%FF%FE"),
        Handshake(0, query_string=b"&".join([b"a=1"] * 101)),
        Handshake(0, query_string=b"token=" + b"A" * 9000),
        Handshake(
            0,
            query_string=b"token=" + raw,
            headers=[(b"sec-websocket-protocol", b"access_token, " + raw)],
        ),
        Handshake(every_source, headers=[(b"authorization", b"Bearer " + raw)]),
        Handshake(
            every_source | FLAG_OTHER_SCHEME, headers=[(b"authorization", b"JWT  " + raw + b" ")]
        ),
        Handshake(
            every_source,
            headers=[(b"authorization", b"bearer " + raw), (b"authorization", b"Bearer x")],
        ),
        Handshake(
            cookie | FLAG_SECURE_SCHEME,
            headers=[
                (b"host", b"chat.example.com"),
                (b"origin", b"https://chat.example.com"),
                (b"cookie", b"a=1; jwt=" + raw + b"; b=2"),
            ],
        ),
        Handshake(
            cookie,
            headers=[
                (b"host", b"chat.example.com:8000"),
                (b"origin", b"http://chat.example.com:8000"),
                (b"cookie", b"jwt=" + raw),
            ],
        ),
        Handshake(
            cookie,
            headers=[
                (b"host", b"a.example.net"),
                (b"origin", b"http://b.example.net"),
                (b"cookie", b"jwt=" + raw),
            ],
        ),
        Handshake(
            cookie,
            headers=[
                (b"host", b"chat.example.com"),
                (b"origin", b"https://evil.example.com"),
                (b"cookie", b'jwt="' + raw + b'"'),
            ],
        ),
        Handshake(
            cookie,
            headers=[
                (b"origin", b"https://app.example.org"),
                (b"cookie", b"jwt=" + raw),
                (b"cookie", b"jwt=" + raw),
            ],
        ),
        Handshake(cookie, headers=[(b"origin", b"http://[::1"), (b"cookie", b"jwt=x")]),
        Handshake(FLAG_SMALL_MAX, headers=[(b"sec-websocket-protocol", b"access_token, " + raw)]),
        Handshake(0, headers=[(b"sec-websocket-protocol", b"access_token, \xe9" + raw)]),
        Handshake(
            FLAG_RAW_SCOPE,
            headers=[(b"sec-websocket-protocol", b"access_token")],
            raw_subprotocols=["access_token", token, "access_token, " + token],
        ),
        Handshake(FLAG_RAW_SCOPE, raw_subprotocols=["chat,access_token", token]),
    ]
    for case in cases:
        yield encode_handshake(case)
    # The first handshake under every source order, so each order has a seed.
    for order in range(len(SOURCE_ORDERS)):
        yield encode_handshake(replace(cases[0], flags=order | FLAG_COOKIE_NAME))


def write(directory: Path, seeds: Iterator[bytes]) -> int:
    """Replace ``directory``'s content with ``seeds``; return how many distinct ones."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    written = set()
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()  # noqa: S324 (libFuzzer's naming, not security)
        (directory / name).write_bytes(seed)
        written.add(name)
    return len(written)


def main() -> None:
    """Write both corpora under the directory named on the command line (or the default)."""
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIRECTORY
    verify = write(
        root / "verify",
        (seed for index, config in enumerate(CONFIGS) for seed in verify_seeds(index, config)),
    )
    extract = write(root / "extract", extraction_seeds())
    print(f"seed corpus: {extract} extraction inputs, {verify} verification inputs in {root}")


if __name__ == "__main__":
    main()
