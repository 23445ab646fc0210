"""Fuzz the extraction entry point: ``channels_jwt.extract.extract_token``.

Each input is a handshake (see :mod:`fuzz.formats`): query string bytes, any headers
(``Sec-WebSocket-Protocol``, ``Authorization``, ``Cookie``, ``Origin``, others) and flags
choosing the ``TOKEN_SOURCES`` order, a cookie name, the header scheme and the size cap.
By default the scope's ``subprotocols`` are derived from the headers exactly as uvicorn
derives them; a flag instead takes them from the input as they are (no server builds such
a scope, so only the exception rule applies there).

Allowed outcomes: an ``Extraction``, or ``TokenMalformed`` (the only failure extraction
documents). Anything else escaping is a crash, and so is a broken invariant: a credential
that is empty, not ASCII or over the cap; a source that was not searched; a part of the
scope changed by a source that was not searched; and, for server-built scopes, any
credential (the marker, the token, the query parameter, a matching ``Authorization``
header, the named cookie) left in the rewritten scope the application would see.

Run: ``python -m fuzz.fuzz_extract [libFuzzer flags] [corpus dirs]`` (see ``make fuzz``).
"""

from __future__ import annotations

import sys
from urllib.parse import unquote_to_bytes

import atheris

with atheris.instrument_imports(include=["channels_jwt", "fuzz"]):
    from channels_jwt.exceptions import TokenMalformed
    from channels_jwt.extract import Extraction, extract_token
    from channels_jwt.origins import is_trusted_origin
    from channels_jwt.sources import ExtractionRules
    from fuzz.formats import (
        FLAG_COOKIE_NAME,
        FLAG_OTHER_SCHEME,
        FLAG_SMALL_MAX,
        Handshake,
        decode_handshake,
    )
    from fuzz.harness import Outcomes

MARKER = "access_token"
QUERY_PARAM = "token"
COOKIE_NAME = "jwt"
OUTCOMES = Outcomes("extract")


def rules_for(handshake: Handshake) -> ExtractionRules:
    """The extraction rules the input's flags select."""
    flags = handshake.flags
    return ExtractionRules(
        sources=handshake.sources,
        subprotocol=MARKER,
        query_param=QUERY_PARAM,
        header_scheme="JWT" if flags & FLAG_OTHER_SCHEME else "Bearer",
        cookie_name=COOKIE_NAME if flags & FLAG_COOKIE_NAME else None,
        max_token_bytes=64 if flags & FLAG_SMALL_MAX else 8192,
        trusted_origin=is_trusted_origin,
    )


def server_subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The ``subprotocols`` uvicorn puts in the scope for these headers."""
    offered: list[str] = []
    for name, value in headers:
        if name.lower() == b"sec-websocket-protocol":
            offered.extend(entry.strip() for entry in value.decode("latin-1").split(","))
    return offered


def scope_for(handshake: Handshake) -> dict[str, object]:
    """The WebSocket scope of ``handshake``."""
    if handshake.raw_scope:
        headers = list(handshake.headers)
        subprotocols = list(handshake.raw_subprotocols)
    else:
        # Servers lower-case header names; the subprotocol list follows from the headers.
        headers = [(name.lower(), value) for name, value in handshake.headers]
        subprotocols = server_subprotocols(headers)
    return {
        "type": "websocket",
        "scheme": handshake.scheme,
        "path": "/ws/fuzz/",
        "query_string": handshake.query_string,
        "headers": headers,
        "subprotocols": subprotocols,
    }


def test_one_input(data: bytes) -> None:
    """One handshake: extract, then check the result's invariants."""
    handshake = decode_handshake(data)
    rules = rules_for(handshake)
    scope = scope_for(handshake)
    try:
        extraction = extract_token(scope, rules)
    except TokenMalformed:
        OUTCOMES.add("4400")
        return
    check_extraction(scope, rules, extraction, server_built=not handshake.raw_scope)
    OUTCOMES.add(f"found:{extraction.source}" if extraction.token else "none")


def check_extraction(
    scope: dict[str, object], rules: ExtractionRules, extraction: Extraction, server_built: bool
) -> None:
    """Fail (AssertionError) on any broken invariant of a successful extraction."""
    token, source = extraction.token, extraction.source
    assert (token is None) == (source is None), "token and source disagree"
    if token is not None:
        assert token, "empty credential returned"
        assert token.isascii(), "non-ASCII credential returned"
        assert len(token) <= rules.max_token_bytes, "credential over MAX_TOKEN_BYTES"
        assert source in rules.sources, f"credential from unsearched source {source}"
    if "query" not in rules.sources:
        assert extraction.query_string == scope["query_string"], "query changed unsearched"
    if "subprotocol" not in rules.sources:
        assert extraction.subprotocols == scope["subprotocols"], "subprotocols changed"
    if server_built:
        _check_no_credential_left(rules, extraction)


def _check_no_credential_left(rules: ExtractionRules, extraction: Extraction) -> None:
    headers = extraction.headers
    if "subprotocol" in rules.sources:
        gone = {MARKER} | ({extraction.token} if extraction.source == "subprotocol" else set())
        left = set(extraction.subprotocols) | set(server_subprotocols(headers))
        assert not gone & left, "marker or token left in the subprotocols"
    if "query" in rules.sources:
        names = [field.partition(b"=")[0] for field in extraction.query_string.split(b"&")]
        decoded = [unquote_to_bytes(name.replace(b"+", b" ")) for name in names]
        assert QUERY_PARAM.encode() not in decoded, "token parameter left"
    if "header" in rules.sources:
        for name, value in headers:
            if name == b"authorization":
                scheme = value.decode("latin-1").partition(" ")[0]
                assert scheme.lower() != rules.header_scheme.lower(), "Authorization left"
    if "cookie" in rules.sources and rules.cookie_name:
        for name, value in headers:
            if name == b"cookie":
                for pair in value.decode("latin-1").split(";"):
                    cookie = pair.strip().partition("=")[0]
                    assert cookie != rules.cookie_name, "token cookie left"


def main() -> None:
    """Hand over to libFuzzer (its flags and corpus directories come from ``sys.argv``)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
