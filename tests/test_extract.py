"""Unit tests for ``channels_jwt.extract``: find the credential, remove it from the scope."""

from __future__ import annotations

from typing import Any

import pytest

from channels_jwt.exceptions import TokenMalformed
from channels_jwt.extract import Extraction, extract_token
from tests.harness import (
    EXTRACTION_RULES,
    OTHER_TOKEN,
    TOKEN,
    TRUSTED_ORIGIN,
    extract,
    extraction_rules,
    make_scope,
)


def scope_with_token_in(source: str, token: str) -> dict[str, Any]:
    """A scope presenting ``token`` in exactly one ``source``."""
    if source == "subprotocol":
        return make_scope(
            subprotocols=["access_token", token],
            headers=[(b"sec-websocket-protocol", f"access_token, {token}".encode("latin-1"))],
        )
    if source == "query":
        return make_scope(query_string=b"token=" + token.encode("latin-1"))
    if source == "header":
        return make_scope(headers=[(b"authorization", f"Bearer {token}".encode("latin-1"))])
    return make_scope(
        headers=[
            (b"origin", TRUSTED_ORIGIN.encode()),
            (b"cookie", f"jwt={token}".encode("latin-1")),
        ]
    )


SOURCES = ["subprotocol", "query", "header", "cookie"]


# --- every source: caps, non-ASCII, removal ----------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_token_of_max_token_bytes_is_allowed(source: str) -> None:
    token = "a" * 100
    result = extract_token(
        scope_with_token_in(source, token), extraction_rules(max_token_bytes=100)
    )
    assert (result.token, result.source) == (token, source)


@pytest.mark.parametrize("source", SOURCES)
def test_token_over_max_token_bytes_is_malformed(source: str) -> None:
    with pytest.raises(TokenMalformed):
        extract_token(scope_with_token_in(source, "a" * 101), extraction_rules(max_token_bytes=100))


@pytest.mark.parametrize("source", SOURCES)
def test_non_ascii_token_is_malformed(source: str) -> None:
    with pytest.raises(TokenMalformed):
        extract_token(scope_with_token_in(source, "tok\xe9n"), EXTRACTION_RULES)


@pytest.mark.parametrize("source", SOURCES)
def test_token_is_nowhere_in_the_rewritten_parts(source: str) -> None:
    result = extract_token(scope_with_token_in(source, TOKEN), EXTRACTION_RULES)
    assert (result.token, result.source) == (TOKEN, source)
    rest = repr((result.subprotocols, result.query_string, result.headers))
    assert TOKEN not in rest
    assert "access_token" not in rest


# --- sources: ambiguity and order --------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("subprotocol", "query"),
        ("subprotocol", "header"),
        ("subprotocol", "cookie"),
        ("query", "header"),
        ("query", "cookie"),
        ("header", "cookie"),
    ],
)
def test_credentials_in_two_sources_are_malformed(first: str, second: str) -> None:
    one = scope_with_token_in(first, TOKEN)
    two = scope_with_token_in(second, OTHER_TOKEN)
    scope = make_scope(
        subprotocols=one["subprotocols"] + two["subprotocols"],
        query_string=one["query_string"] + two["query_string"],
        headers=one["headers"] + two["headers"],
    )
    with pytest.raises(TokenMalformed):
        extract_token(scope, EXTRACTION_RULES)


def test_same_token_in_two_sources_is_malformed() -> None:
    with pytest.raises(TokenMalformed):
        extract(subprotocols=["access_token", TOKEN], query_string=f"token={TOKEN}".encode())


def test_empty_credential_beside_a_real_one_is_not_ambiguous() -> None:
    result = extract(
        subprotocols=["access_token"],
        query_string=b"token=",
        headers=[(b"authorization", f"Bearer {TOKEN}".encode())],
    )
    assert (result.token, result.source) == (TOKEN, "header")
    assert (result.subprotocols, result.query_string, result.headers) == ([], b"", [])


def test_source_not_listed_is_not_used_but_stripped() -> None:
    # DESIGN.md section 2: no copy of a token the middleware did not use reaches the app.
    headers = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"x-kept", b"1")]
    result = extract(headers=headers, sources=("subprotocol", "query"))
    assert (result.token, result.source, result.headers) == (None, None, [(b"x-kept", b"1")])


def test_no_sources_finds_nothing_and_leaves_no_credential() -> None:
    result = extract(
        subprotocols=["chat", "access_token", TOKEN],
        query_string=b"room=1&token=x",
        headers=[(b"cookie", f"a=1; jwt={TOKEN}".encode())],
        sources=(),
        cookie_name="jwt",
    )
    assert (result.token, result.subprotocols, result.query_string, result.headers) == (
        None,
        ["chat"],
        b"room=1",
        [(b"cookie", b"a=1")],
    )


def test_an_unused_copy_beside_the_used_token_is_stripped() -> None:
    # ?token=t is used (the default sources); the Bearer header copy must not reach the app.
    result = extract(
        query_string=f"token={TOKEN}".encode(),
        headers=[(b"authorization", f"Bearer {TOKEN}".encode())],
        sources=("subprotocol", "query"),
    )
    assert (result.token, result.source, result.query_string, result.headers) == (
        TOKEN,
        "query",
        b"",
        [],
    )


@pytest.mark.parametrize(
    "offered",
    [
        pytest.param(
            ["access_token", f"%{ord(TOKEN[0]):02X}{TOKEN[1:]}"], id="token-percent-encoded"
        ),
        pytest.param(
            ["access%5Ftoken", f"%{ord(TOKEN[0]):02X}{TOKEN[1:]}"], id="both-percent-encoded"
        ),
        pytest.param(["access_token%2C%20" + TOKEN], id="joined-by-an-encoded-comma"),
    ],
)
def test_a_percent_encoded_subprotocol_header_is_stripped_as_daphne_decodes_it(
    offered: list[str],
) -> None:
    # daphne decodes the header into ``subprotocols`` but hands the raw header on.
    raw = ", ".join(["chat%2Cv1", *offered])
    result = extract(
        subprotocols=["chat", "v1", "access_token", TOKEN],
        headers=[(b"sec-websocket-protocol", raw.encode())],
    )
    assert result.token == TOKEN
    assert result.subprotocols == ["chat", "v1"]
    assert result.headers == [(b"sec-websocket-protocol", b"chat%2Cv1")]


@pytest.mark.parametrize(
    "sources",
    [
        pytest.param(("subprotocol", "query", "header"), id="subprotocol-first"),
        pytest.param(("header", "query", "subprotocol"), id="header-first"),
        pytest.param(("query", "header", "subprotocol"), id="query-first"),
    ],
)
def test_order_of_sources_does_not_change_the_result(sources: tuple[str, ...]) -> None:
    result = extract(
        subprotocols=["chat", "access_token"],
        query_string=b"a=1&token=",
        headers=[
            (b"sec-websocket-protocol", b"chat, access_token"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
        ],
        sources=sources,
    )
    assert result == Extraction(
        TOKEN, "header", ["chat"], b"a=1", [(b"sec-websocket-protocol", b"chat")], True
    )


def test_later_source_is_still_searched_after_a_hit() -> None:
    with pytest.raises(TokenMalformed):
        extract(
            query_string=f"token={TOKEN}".encode(),
            headers=[(b"authorization", f"Bearer {OTHER_TOKEN}".encode())],
            sources=("query", "header"),
        )


def test_scope_is_not_mutated() -> None:
    scope = scope_with_token_in("subprotocol", TOKEN)
    scope["query_string"] = f"a=1&token={OTHER_TOKEN}".encode()
    before = repr(scope)
    with pytest.raises(TokenMalformed):
        extract_token(scope, EXTRACTION_RULES)
    extract_token(scope, extraction_rules(sources=("subprotocol",)))
    assert repr(scope) == before


def test_repr_of_an_extraction_shows_no_token() -> None:
    extraction = extract(subprotocols=["access_token", "eyJ.secret-token.sig"])
    assert extraction.token == "eyJ.secret-token.sig"
    assert "secret-token" not in repr(extraction)


def test_a_non_ascii_query_token_raises_without_the_decoders_exception() -> None:
    with pytest.raises(TokenMalformed) as info:
        extract(query_string=b"token=secret-%FF-token", sources=["query"])
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
