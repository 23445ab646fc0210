"""Token sources (``channels_jwt.sources``): each place a client can put its token, found
and taken out of the scope."""

from __future__ import annotations

import pytest

from channels_jwt.exceptions import TokenMalformed
from channels_jwt.extract import Extraction, extract_token
from channels_jwt.sources import BY_NAME, CredentialParts
from tests.harness import (
    EXTRACTION_RULES,
    OTHER_TOKEN,
    TOKEN,
    TRUSTED_ORIGIN,
    Headers,
    extract,
    extraction_rules,
    make_scope,
)

# --- subprotocol -------------------------------------------------------------------------


def test_subprotocol_token_is_the_entry_after_the_marker() -> None:
    result = extract(subprotocols=["chat", "access_token", TOKEN, "v2"])
    assert (result.token, result.source) == (TOKEN, "subprotocol")
    assert result.subprotocols == ["chat", "v2"]
    assert result.marker_offered is True


def test_subprotocol_header_is_rewritten_without_marker_and_token() -> None:
    result = extract(
        subprotocols=["chat", "access_token", TOKEN],
        headers=[
            (b"host", b"example.com"),
            (b"sec-websocket-protocol", f"chat, access_token, {TOKEN}".encode()),
            (b"user-agent", b"test"),
        ],
    )
    assert result.headers == [
        (b"host", b"example.com"),
        (b"sec-websocket-protocol", b"chat"),
        (b"user-agent", b"test"),
    ]


def test_subprotocol_header_without_spaces_is_rewritten() -> None:
    result = extract(
        subprotocols=["access_token", TOKEN, "chat"],
        headers=[(b"sec-websocket-protocol", f"access_token,{TOKEN},chat".encode())],
    )
    assert result.headers == [(b"sec-websocket-protocol", b"chat")]


def test_subprotocol_header_is_dropped_when_only_marker_and_token_remain() -> None:
    result = extract(
        subprotocols=["access_token", TOKEN],
        headers=[
            (b"sec-websocket-protocol", f"access_token, {TOKEN}".encode()),
            (b"host", b"example.com"),
        ],
    )
    assert result.subprotocols == []
    assert result.headers == [(b"host", b"example.com")]


def test_marker_as_last_entry_counts_as_no_token() -> None:
    result = extract(
        subprotocols=["chat", "access_token"],
        headers=[(b"sec-websocket-protocol", b"chat, access_token")],
    )
    assert (result.token, result.source) == (None, None)
    assert result.subprotocols == ["chat"]
    assert result.headers == [(b"sec-websocket-protocol", b"chat")]
    assert result.marker_offered is True


def test_no_marker_leaves_subprotocols_untouched() -> None:
    headers = [(b"sec-websocket-protocol", b"chat, v2")]
    result = extract(subprotocols=["chat", "v2"], headers=headers)
    assert (result.token, result.source) == (None, None)
    assert result.subprotocols == ["chat", "v2"]
    assert result.headers == headers
    assert result.marker_offered is False


def test_custom_marker() -> None:
    result = extract(subprotocols=["jwt", TOKEN], subprotocol="jwt")
    assert (result.token, result.source) == (TOKEN, "subprotocol")
    assert result.marker_offered is True


def test_repeated_marker_is_malformed() -> None:
    with pytest.raises(TokenMalformed):
        extract(subprotocols=["access_token", TOKEN, "access_token", OTHER_TOKEN])


def test_sixteen_subprotocols_are_allowed() -> None:
    offered = [f"p{i}" for i in range(14)] + ["access_token", TOKEN]
    assert extract(subprotocols=offered).token == TOKEN


def test_more_than_sixteen_subprotocols_is_malformed() -> None:
    offered = [f"p{i}" for i in range(15)] + ["access_token", TOKEN]
    with pytest.raises(TokenMalformed):
        extract(subprotocols=offered)


def test_marker_offered_is_reported_when_subprotocol_is_not_a_source() -> None:
    result = extract(subprotocols=["access_token", TOKEN], sources=("query",))
    assert result.token is None
    # Not a source, yet neither the marker nor the token reaches the app.
    assert result.subprotocols == []
    assert result.marker_offered is True


# --- query string ------------------------------------------------------------------------


def test_query_token_is_found_and_removed() -> None:
    result = extract(query_string=f"token={TOKEN}".encode())
    assert (result.token, result.source) == (TOKEN, "query")
    assert result.query_string == b""


def test_query_other_parameters_are_kept_in_order() -> None:
    result = extract(query_string=f"b=2&token={TOKEN}&a=1&flag&c=%20x".encode())
    assert result.token == TOKEN
    assert result.query_string == b"b=2&a=1&flag&c=%20x"


@pytest.mark.parametrize(
    ("query_string", "token"),
    [
        pytest.param(b"token=abc%2Edef", "abc.def", id="percent-decoded"),
        pytest.param(b"token=a%252Eb", "a%2Eb", id="decoded-exactly-once"),
        pytest.param(b"token=a+b", "a b", id="plus-is-space"),
        pytest.param(b"token=a%2Bb", "a+b", id="encoded-plus-is-plus"),
        pytest.param(b"tok%65n=abc", "abc", id="percent-encoded-name"),
        pytest.param(b"%74oken=abc", "abc", id="percent-encoded-first-letter"),
        pytest.param(b"token=a=b", "a=b", id="equals-in-value"),
    ],
)
def test_query_form_decoding(query_string: bytes, token: str) -> None:
    result = extract(query_string=query_string)
    assert (result.token, result.query_string) == (token, b"")


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param(b"tokens=abc", id="longer-name"),
        pytest.param(b"xtoken=abc", id="prefixed-name"),
        pytest.param(b"Token=abc", id="different-case"),
        pytest.param(b"tok+en=abc", id="plus-in-name"),
        pytest.param(b"tok%2565n=abc", id="double-encoded-name"),
    ],
)
def test_query_other_names_do_not_match(query_string: bytes) -> None:
    result = extract(query_string=query_string)
    assert (result.token, result.query_string) == (None, query_string)


def test_query_custom_parameter_name() -> None:
    result = extract(query_string=f"token=x&jwt={TOKEN}".encode(), query_param="jwt")
    assert (result.token, result.query_string) == (TOKEN, b"token=x")


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param(b"token=a&token=b", id="same-spelling"),
        pytest.param(b"token=a&tok%65n=b", id="encoded-name"),
        pytest.param(b"token=&token=b", id="first-empty"),
    ],
)
def test_query_repeated_parameter_is_malformed(query_string: bytes) -> None:
    with pytest.raises(TokenMalformed):
        extract(query_string=query_string)


@pytest.mark.parametrize(
    ("query_string", "rest"),
    [
        pytest.param(b"a=1&token=", b"a=1", id="empty-value"),
        pytest.param(b"token&a=1", b"a=1", id="no-equals"),
    ],
)
def test_query_empty_token_counts_as_none_and_is_removed(query_string: bytes, rest: bytes) -> None:
    result = extract(query_string=query_string)
    assert (result.token, result.source, result.query_string) == (None, None, rest)


def test_query_without_the_parameter_is_untouched() -> None:
    result = extract(query_string=b"a=1&b=2")
    assert (result.token, result.query_string) == (None, b"a=1&b=2")


def test_missing_query_string_key() -> None:
    result = extract_token({"type": "websocket"}, EXTRACTION_RULES)
    assert result == Extraction(None, None, [], b"", [], False)


def test_query_string_of_8192_bytes_is_allowed() -> None:
    query_string = f"token={TOKEN}&pad=".encode()
    query_string += b"x" * (8192 - len(query_string))
    assert extract(query_string=query_string).token == TOKEN


def test_query_string_over_8192_bytes_is_malformed() -> None:
    query_string = f"token={TOKEN}&pad=".encode()
    query_string += b"x" * (8193 - len(query_string))
    with pytest.raises(TokenMalformed):
        extract(query_string=query_string)


def test_query_string_of_100_fields_is_allowed() -> None:
    query_string = b"&".join([f"token={TOKEN}".encode()] + [b"a=1"] * 99)
    assert extract(query_string=query_string).token == TOKEN


def test_query_string_over_100_fields_is_malformed() -> None:
    query_string = b"&".join([f"token={TOKEN}".encode()] + [b"a=1"] * 100)
    with pytest.raises(TokenMalformed):
        extract(query_string=query_string)


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param(b"token=%C3%A9", id="utf8-percent-encoded"),
        pytest.param(b"token=%FF", id="invalid-utf8"),
        pytest.param(b"token=\xc3\xa9", id="raw-bytes"),
    ],
)
def test_query_non_ascii_token_is_malformed(query_string: bytes) -> None:
    with pytest.raises(TokenMalformed):
        extract(query_string=query_string)


# --- Authorization header ----------------------------------------------------------------


def test_bearer_header_is_found_and_removed() -> None:
    result = extract(
        headers=[
            (b"host", b"example.com"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"user-agent", b"test"),
        ]
    )
    assert (result.token, result.source) == (TOKEN, "header")
    assert result.headers == [(b"host", b"example.com"), (b"user-agent", b"test")]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    result = extract(headers=[(b"authorization", f"{scheme} {TOKEN}".encode())])
    assert (result.token, result.headers) == (TOKEN, [])


def test_bearer_credential_surrounding_spaces_are_stripped() -> None:
    result = extract(headers=[(b"authorization", f"Bearer  {TOKEN} ".encode())])
    assert result.token == TOKEN


def test_custom_header_scheme() -> None:
    result = extract(headers=[(b"authorization", f"JWT {TOKEN}".encode())], header_scheme="JWT")
    assert (result.token, result.source) == (TOKEN, "header")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"Basic dXNlcjpwYXNz", id="basic"),
        pytest.param(b"Token abc", id="token"),
        pytest.param(b"Bearerabc", id="no-space"),
    ],
)
def test_other_authorization_schemes_are_ignored_and_kept(value: bytes) -> None:
    headers = [(b"authorization", value)]
    result = extract(headers=headers)
    assert (result.token, result.headers) == (None, headers)


def test_bearer_is_used_beside_a_kept_basic_header() -> None:
    result = extract(
        headers=[
            (b"authorization", b"Basic dXNlcjpwYXNz"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
        ]
    )
    assert result.token == TOKEN
    assert result.headers == [(b"authorization", b"Basic dXNlcjpwYXNz")]


def test_two_bearer_headers_are_malformed() -> None:
    with pytest.raises(TokenMalformed):
        extract(
            headers=[
                (b"authorization", f"Bearer {TOKEN}".encode()),
                (b"authorization", f"Bearer {OTHER_TOKEN}".encode()),
            ]
        )


@pytest.mark.parametrize("value", [b"Bearer", b"Bearer ", b"Bearer    "])
def test_empty_bearer_counts_as_none_and_is_removed(value: bytes) -> None:
    result = extract(headers=[(b"authorization", value), (b"host", b"example.com")])
    assert (result.token, result.source) == (None, None)
    assert result.headers == [(b"host", b"example.com")]


# --- cookie ------------------------------------------------------------------------------


def test_cookie_with_trusted_origin_is_found_and_removed() -> None:
    result = extract(
        headers=[
            (b"origin", TRUSTED_ORIGIN.encode()),
            (b"cookie", f"a=1; jwt={TOKEN}; b=2".encode()),
        ]
    )
    assert (result.token, result.source) == (TOKEN, "cookie")
    assert result.headers == [(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", b"a=1; b=2")]


def test_cookie_header_holding_only_the_token_is_dropped() -> None:
    result = extract(
        headers=[(b"cookie", f"jwt={TOKEN}".encode()), (b"origin", TRUSTED_ORIGIN.encode())]
    )
    assert result.token == TOKEN
    assert result.headers == [(b"origin", TRUSTED_ORIGIN.encode())]


def test_cookie_is_judged_by_the_scope_scheme_and_the_headers_without_it() -> None:
    seen: list[tuple[str | None, Headers]] = []

    def record(scheme: str | None, headers: Headers) -> bool:
        seen.append((scheme, headers))
        return True

    headers = [
        (b"host", b"a.example:8443"),
        (b"cookie", f"theme=dark; jwt={TOKEN}".encode()),
        (b"origin", b"https://a.example:8443"),
    ]
    scope = {**make_scope(headers=headers), "scheme": "wss"}
    result = extract_token(scope, extraction_rules(trusted_origin=record))
    assert result.token == TOKEN
    assert seen == [
        (
            "wss",
            [
                (b"host", b"a.example:8443"),
                (b"cookie", b"theme=dark"),
                (b"origin", b"https://a.example:8443"),
            ],
        )
    ]


def test_cookie_in_a_scope_without_scheme_is_judged_with_none() -> None:
    seen: list[str | None] = []

    def record(scheme: str | None, headers: Headers) -> bool:
        seen.append(scheme)
        return False

    result = extract(headers=[(b"cookie", f"jwt={TOKEN}".encode())], trusted_origin=record)
    assert seen == [None]
    assert (result.token, result.headers) == (None, [])


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(b"https://evil.example", id="foreign"),
        pytest.param(b"http://example.com", id="other-scheme"),
        pytest.param(b"null", id="null"),
    ],
)
def test_cookie_with_untrusted_origin_is_absent_but_stripped(origin: bytes) -> None:
    result = extract(headers=[(b"origin", origin), (b"cookie", f"session=s; jwt={TOKEN}".encode())])
    assert (result.token, result.source) == (None, None)
    assert result.headers == [(b"origin", origin), (b"cookie", b"session=s")]


def test_cookie_with_untrusted_origin_does_not_make_another_source_ambiguous() -> None:
    result = extract(
        query_string=f"token={OTHER_TOKEN}".encode(),
        headers=[(b"origin", b"https://evil.example"), (b"cookie", f"jwt={TOKEN}".encode())],
    )
    assert (result.token, result.source) == (OTHER_TOKEN, "query")
    assert result.headers == [(b"origin", b"https://evil.example")]


def test_cookie_is_ignored_without_cookie_name() -> None:
    headers = [(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", f"jwt={TOKEN}".encode())]
    result = extract(headers=headers, cookie_name=None)
    assert (result.token, result.headers) == (None, headers)


def test_empty_cookie_pairs_are_dropped_from_the_rewritten_header() -> None:
    result = extract(
        headers=[(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", f"a=1;; jwt={TOKEN};".encode())]
    )
    assert result.token == TOKEN
    assert result.headers == [(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", b"a=1")]


def test_cookie_without_the_named_cookie_is_untouched() -> None:
    headers = [(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", b"a=1;  b=2")]
    result = extract(headers=headers)
    assert (result.token, result.headers) == (None, headers)


def test_quoted_cookie_value_is_unquoted() -> None:
    result = extract(
        headers=[(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", f'jwt="{TOKEN}"'.encode())]
    )
    assert result.token == TOKEN


def test_cookie_name_must_match_exactly() -> None:
    headers = [
        (b"origin", TRUSTED_ORIGIN.encode()),
        (b"cookie", f"xjwt={TOKEN}; JWT={OTHER_TOKEN}".encode()),
    ]
    result = extract(headers=headers)
    assert (result.token, result.headers) == (None, headers)


@pytest.mark.parametrize(
    "cookies",
    [
        pytest.param([f"jwt={TOKEN}; jwt={OTHER_TOKEN}"], id="one-header"),
        pytest.param([f"jwt={TOKEN}", f"jwt={OTHER_TOKEN}"], id="two-headers"),
    ],
)
def test_repeated_cookie_is_malformed(cookies: list[str]) -> None:
    headers = [(b"origin", TRUSTED_ORIGIN.encode())] + [(b"cookie", c.encode()) for c in cookies]
    with pytest.raises(TokenMalformed):
        extract(headers=headers)


def test_empty_cookie_counts_as_none_and_is_removed() -> None:
    result = extract(headers=[(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", b"jwt=; a=1")])
    assert (result.token, result.source) == (None, None)
    assert result.headers == [(b"origin", TRUSTED_ORIGIN.encode()), (b"cookie", b"a=1")]


def test_the_message_source_takes_nothing_from_the_handshake_and_puts_nothing_in_it() -> None:
    # Its token travels in the first frame (channels_jwt.firstmessage), never in the scope.
    source = BY_NAME["message"]
    scope = make_scope(subprotocols=["chat"])
    before = repr(scope)

    source.present(scope, "a.b.c", extraction_rules(), "")

    assert repr(scope) == before
    parts = CredentialParts.of(scope)
    assert source.take(parts, extraction_rules()) == (None, parts)
    assert source.remove(parts, extraction_rules()) == parts
