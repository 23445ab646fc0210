"""Properties of credential extraction (``channels_jwt.extract``) over arbitrary scopes.

Scopes are drawn as a hostile client (or a lax server) could hand them over: query strings as
raw bytes (invalid UTF-8, percent escapes, ``+``, ``;``, repeated and look-alike names, huge
field counts), subprotocol lists (the marker anywhere, repeated, empty entries, thousands of
entries) and header values as raw bytes (``Authorization`` and ``Cookie`` repeated, other
schemes, non-ASCII). For every scope:

- nothing but ``TokenMalformed`` (an ``AuthenticationFailed``) is ever raised;
- a token is returned only when a credential really sits in exactly one place, and it is
  that credential; a credential that sits in an enabled source is never silently ignored;
- the rewritten parts handed on to the application hold no credential any more (the same
  reference search run on them finds nothing), and nothing else is lost from them;
- a rejection always has a cause: a credential present, or a size cap exceeded.

"Where is a credential" is answered by :func:`credentials`, a small reference written from
DESIGN.md (sections 2 and 4) on top of the standard library's form decoding
(``urllib.parse.parse_qsl``), independent of the package's code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_from_bytes, unquote

from hypothesis import event, given, settings
from hypothesis import strategies as st

from channels_jwt.exceptions import TokenMalformed
from channels_jwt.extract import Extraction, extract_token
from channels_jwt.sources import HANDSHAKE_SOURCES as SOURCES
from channels_jwt.sources import (
    MAX_QUERY_FIELDS,
    MAX_QUERY_STRING_BYTES,
    MAX_SUBPROTOCOLS,
    ExtractionRules,
)
from tests.harness import MARKER
from tests.properties.profiles import examples

PARAM = "token"
COOKIE = "jwt"
SITE = "https://site.test"
MAX_TOKEN_BYTES = 512
#: Header names the middleware reads or rewrites; all others must pass through untouched.
CREDENTIAL_HEADERS = {b"authorization", b"cookie", b"sec-websocket-protocol"}


def rules_for(sources: Sequence[str]) -> ExtractionRules:
    """The rules of a project using ``sources`` (a small token cap, to reach it often)."""
    return ExtractionRules(
        sources=tuple(sources),
        subprotocol=MARKER,
        query_param=PARAM,
        header_scheme="Bearer",
        cookie_name=COOKIE,
        max_token_bytes=MAX_TOKEN_BYTES,
        trusted_origin=lambda scheme, headers: origin_of(headers) == SITE,
    )


# --- the reference: where are the credentials of a scope? -----------------------------------


@dataclass(frozen=True)
class Place:
    """One credential found by the reference search."""

    source: str
    value: str


def query_fields(query_string: bytes) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` fields, bytes kept one-to-one as latin-1 text."""
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1")


def origin_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The first ``Origin`` header (the one a browser sends)."""
    for name, value in headers:
        if name.lower() == b"origin":
            return value.decode("latin-1")
    return None


def slots(
    sources: Iterable[str],
    subprotocols: Sequence[str],
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
) -> list[Place]:
    """Every credential slot the enabled ``sources`` of a scope fill, empty ones included."""
    found: list[Place] = []
    for source in sources:
        if source == "subprotocol":
            # The entry right after the marker is the token.
            found += [
                Place(source, subprotocols[at + 1] if at + 1 < len(subprotocols) else "")
                for at, entry in enumerate(subprotocols)
                if entry == MARKER
            ]
        elif source == "query":
            found += [
                Place(source, value) for name, value in query_fields(query_string) if name == PARAM
            ]
        elif source == "header":
            # "Authorization: Bearer <jwt>": the scheme is case-insensitive (RFC 7235).
            for name, value in headers:
                if name.lower() == b"authorization":
                    scheme, _, credential = value.decode("latin-1").partition(" ")
                    if scheme.lower() == "bearer":
                        found.append(Place(source, credential.strip(" ")))
        elif origin_of(headers) == SITE:
            # A cookie counts only when the Origin is the site's own.
            for name, value in headers:
                if name.lower() == b"cookie":
                    for pair in value.decode("latin-1").split(";"):
                        cookie, _, cookie_value = pair.strip().partition("=")
                        if cookie == COOKIE:
                            found.append(Place(source, cookie_value.strip().strip('"')))
    return found


def credentials(
    sources: Iterable[str],
    subprotocols: Sequence[str],
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
) -> list[Place]:
    """The non-empty credentials of a scope (DESIGN.md 2, 4): an empty one counts as none."""
    return [place for place in slots(sources, subprotocols, query_string, headers) if place.value]


def refusable_without_credential(sources: Sequence[str], raw: RawScope) -> bool:
    """Whether a scope may be refused though it carries no usable credential.

    A size cap exceeded (DESIGN.md section 4), or an ambiguity: a slot repeated even if empty
    (``?token=&token=``), or a repeated subprotocol while the marker is offered (RFC 6455
    section 4.1 requires unique entries).
    """
    subprotocols, query = raw.subprotocols, raw.query_string
    caps = ("subprotocol" in sources and len(subprotocols) > MAX_SUBPROTOCOLS) or (
        "query" in sources
        and (len(query) > MAX_QUERY_STRING_BYTES or query.count(b"&") + 1 > MAX_QUERY_FIELDS)
    )
    repeated_slot = any(
        len(slots([source], subprotocols, query, raw.headers)) > 1 for source in sources
    )
    repeated_subprotocol = (
        "subprotocol" in sources
        and MARKER in subprotocols
        and len(set(subprotocols)) < len(subprotocols)
    )
    return caps or repeated_slot or repeated_subprotocol


# --- strategies ---------------------------------------------------------------------------------

TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
#: Credential-shaped values: mostly JWT-like, sometimes odd (spaces, quotes, non-ASCII).
credential_values = st.one_of(
    st.text(TOKEN_ALPHABET, min_size=1, max_size=40),
    st.text(TOKEN_ALPHABET, min_size=MAX_TOKEN_BYTES - 2, max_size=MAX_TOKEN_BYTES + 2),
    st.sampled_from(["", " ", '"', "eyJ.eyJ.sig", "é", "\x00", "a,b", "a b", "=", MARKER]),
    st.text(max_size=12),
)
subprotocol_entries = st.one_of(
    st.just(MARKER),
    st.sampled_from(["", "chat", "v2.chat", "ACCESS_TOKEN", " access_token", "access_token "]),
    credential_values,
)


@st.composite
def subprotocol_lists(draw: st.DrawFn) -> list[str]:
    """Short lists of odd entries, or very long ones (up to thousands of entries)."""
    entries = draw(st.lists(subprotocol_entries, max_size=20))
    if draw(st.integers(0, 9)) == 0:
        filler = draw(st.sampled_from(["p", MARKER, ""]))
        at = draw(st.integers(0, len(entries)))
        entries[at:at] = [filler] * draw(st.integers(MAX_SUBPROTOCOLS - 2, 3000))
    return entries


query_names = st.one_of(
    st.sampled_from(
        [b"token", b"tok%65n", b"%74oken", b"Token", b"xtoken", b"token[]", b"to+ken", b"", b"a"]
    ),
    st.binary(max_size=8),
)
query_values = st.one_of(
    st.binary(max_size=40),
    credential_values.map(lambda value: value.encode("utf-8", "surrogatepass")),
    credential_values.map(
        lambda value: quote_from_bytes(value.encode("utf-8", "surrogatepass")).encode()
    ),
    st.sampled_from([b"%25", b"%ff", b"%00", b"+", b"%2B", b";token=x", b"=", b"%"]),
)


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    """Raw bytes, or fields joined with ``&`` (sometimes thousands, sometimes ``;``)."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=300))
    fields = [
        name + draw(st.sampled_from([b"=", b"=", b""])) + value
        for name, value in draw(st.lists(st.tuples(query_names, query_values), max_size=8))
    ]
    if kind == 1:
        filler = [b"a=1"] * draw(st.integers(MAX_QUERY_FIELDS - 5, 3000))
        at = draw(st.integers(0, len(filler)))
        fields = filler[:at] + fields + filler[at:]
    separator = draw(st.sampled_from([b"&", b"&", b"&", b";"]))
    return separator.join(fields)


header_names = st.one_of(
    st.sampled_from(
        [
            b"authorization",
            b"Authorization",
            b"AUTHORIZATION",
            b"cookie",
            b"Cookie",
            b"origin",
            b"sec-websocket-protocol",
            b"x-token",
            b"user-agent",
        ]
    ),
    st.binary(min_size=1, max_size=10),
)
header_values = st.one_of(
    st.binary(max_size=60),
    st.builds(
        lambda scheme, value: scheme + value.encode("utf-8", "surrogatepass"),
        st.sampled_from([b"Bearer ", b"bearer ", b"BEARER ", b"Bearer  ", b"Bearer", b"Basic "]),
        credential_values,
    ),
    st.builds(
        lambda prefix, value, suffix: prefix + value.encode("utf-8", "surrogatepass") + suffix,
        st.sampled_from([b"jwt=", b" jwt=", b'jwt="', b"other=1; jwt=", b"JWT=", b"xjwt="]),
        credential_values,
        st.sampled_from([b"", b"; other=2", b'"', b";", b"; jwt=again"]),
    ),
    st.sampled_from([SITE.encode(), b"https://evil.test", b"null", b""]),
)
headers_lists = st.lists(st.tuples(header_names, header_values), max_size=8)
source_orders = st.lists(st.sampled_from(SOURCES), min_size=1, max_size=4, unique=True)


@dataclass(frozen=True)
class RawScope:
    """The parts of a WebSocket scope extraction reads."""

    subprotocols: list[str]
    query_string: bytes
    headers: list[tuple[bytes, bytes]]

    def as_scope(self) -> dict[str, Any]:
        return {
            "type": "websocket",
            "path": "/ws/",
            "subprotocols": self.subprotocols,
            "query_string": self.query_string,
            "headers": self.headers,
        }


raw_scopes = st.builds(RawScope, subprotocol_lists(), query_strings(), headers_lists)


# --- the properties -----------------------------------------------------------------------------


def extract(sources: Sequence[str], raw: RawScope) -> Extraction | TokenMalformed:
    """Run the extraction; return its result or the one exception it may raise."""
    try:
        return extract_token(raw.as_scope(), rules_for(sources))
    except TokenMalformed as exc:  # an AuthenticationFailed: closed 4400 by the middleware
        return exc


@settings(max_examples=examples(400))
@given(sources=source_orders, raw=raw_scopes)
def test_a_token_is_returned_only_from_exactly_one_place(sources: list[str], raw: RawScope) -> None:
    """Any other exception fails the test by escaping; the outcome matches the reference."""
    places = credentials(sources, raw.subprotocols, raw.query_string, raw.headers)
    outcome = extract(sources, raw)
    event(f"extraction: {type(outcome).__name__}, {min(len(places), 2)} place(s)")

    if isinstance(outcome, TokenMalformed):
        assert places or refusable_without_credential(sources, raw)
    elif outcome.token is None:
        assert outcome.source is None
        assert places == [], "a credential in an enabled source was ignored"
    else:
        assert places == [Place(str(outcome.source), outcome.token)]
        assert outcome.token.isascii()
        assert len(outcome.token) <= MAX_TOKEN_BYTES


@settings(max_examples=examples(400))
@given(sources=source_orders, raw=raw_scopes)
def test_the_parts_handed_on_hold_no_credential(sources: list[str], raw: RawScope) -> None:
    outcome = extract(sources, raw)
    if isinstance(outcome, TokenMalformed):
        return
    # No credential is left in any source, enabled or not (DESIGN.md section 2).
    assert credentials(SOURCES, outcome.subprotocols, outcome.query_string, outcome.headers) == []
    assert MARKER not in outcome.subprotocols
    if outcome.source == "subprotocol":
        assert outcome.token not in outcome.subprotocols
        for name, value in outcome.headers:
            if name.lower() == b"sec-websocket-protocol":
                # As daphne reads the header: percent-decoded, then split.
                decoded = unquote(value.decode("latin-1"))
                entries = [entry.strip() for entry in decoded.split(",")]
                assert MARKER not in entries
                assert outcome.token not in entries
    assert outcome.marker_offered == (MARKER in raw.subprotocols)


@settings(max_examples=examples(400))
@given(sources=source_orders, raw=raw_scopes)
def test_nothing_but_the_credential_is_removed(sources: list[str], raw: RawScope) -> None:
    outcome = extract(sources, raw)
    if isinstance(outcome, TokenMalformed):
        return
    # Headers the middleware never reads pass through untouched, in order.
    assert [pair for pair in outcome.headers if pair[0].lower() not in CREDENTIAL_HEADERS] == [
        pair for pair in raw.headers if pair[0].lower() not in CREDENTIAL_HEADERS
    ]
    # Only the marker and the entry after it leave the subprotocol list, whatever the sources
    # (a credential the middleware did not use must not reach the app either).
    expected = list(raw.subprotocols)
    while MARKER in expected:
        at = expected.index(MARKER)
        del expected[at : at + 2]
    assert outcome.subprotocols == expected
    # Only ``token`` fields leave the query string, whatever the sources.
    kept = [field for field in query_fields(raw.query_string) if field[0] != PARAM]
    assert query_fields(outcome.query_string) == kept


@settings(max_examples=examples(100))
@given(
    sources=source_orders,
    raw=raw_scopes,
    count=st.integers(MAX_SUBPROTOCOLS + 1, 20_000),
    fields=st.integers(MAX_QUERY_FIELDS + 1, 20_000),
)
def test_huge_counts_are_refused_before_any_work(
    sources: list[str], raw: RawScope, count: int, fields: int
) -> None:
    """More than 16 subprotocols or 100 query fields, wherever the marker sits: refused."""
    if "subprotocol" in sources:
        # Unique fillers: the count alone must be the reason.
        fillers = [f"p{index}" for index in range(count)]
        crowded = RawScope(
            fillers[: count // 2] + raw.subprotocols + fillers[count // 2 :], b"", []
        )
        assert isinstance(extract(sources, crowded), TokenMalformed)
    if "query" in sources:
        crowded = RawScope([], b"&".join([raw.query_string] + [b"a"] * fields), [])
        assert isinstance(extract(sources, crowded), TokenMalformed)


@settings(max_examples=examples(200))
@given(
    sources=source_orders,
    raw=raw_scopes,
    token=st.text(TOKEN_ALPHABET, min_size=1, max_size=MAX_TOKEN_BYTES).filter(
        lambda token: token != MARKER
    ),
    data=st.data(),
)
def test_a_lone_credential_is_found_in_every_source(
    sources: list[str], raw: RawScope, token: str, data: st.DataObject
) -> None:
    """A token placed in one enabled source, beside credential-free noise, is returned."""
    source = data.draw(st.sampled_from(sources))
    # Noise within every cap: unique subprotocols (a repeat is refused), no marker, short
    # fields but no token field, no credential header; the token itself is not among them.
    noise = RawScope(
        list(dict.fromkeys(e for e in raw.subprotocols[:10] if e not in (MARKER, token))),
        b"&".join(
            field
            for field in raw.query_string.split(b"&")[:20]
            if len(field) <= 200 and not any(name == PARAM for name, _ in query_fields(field))
        ),
        [pair for pair in raw.headers if pair[0].lower() not in CREDENTIAL_HEADERS],
    )
    assert credentials(SOURCES, noise.subprotocols, noise.query_string, noise.headers) == []
    placed = place(token, source, noise, data)
    outcome = extract(sources, placed)
    assert isinstance(outcome, Extraction)
    assert (outcome.token, outcome.source) == (token, source)


def place(token: str, source: str, noise: RawScope, data: st.DataObject) -> RawScope:
    """``noise`` with ``token`` put in ``source`` at a drawn position."""
    if source == "subprotocol":
        at = data.draw(st.integers(0, len(noise.subprotocols)))
        subprotocols = [*noise.subprotocols[:at], MARKER, token, *noise.subprotocols[at:]]
        return RawScope(subprotocols, noise.query_string, noise.headers)
    if source == "query":
        fields = [field for field in noise.query_string.split(b"&") if field]
        at = data.draw(st.integers(0, len(fields)))
        fields.insert(at, b"token=" + quote_from_bytes(token.encode()).encode())
        return RawScope(noise.subprotocols, b"&".join(fields), noise.headers)
    headers = [pair for pair in noise.headers if pair[0].lower() != b"origin"]
    at = data.draw(st.integers(0, len(headers)))
    if source == "header":
        headers.insert(at, (b"authorization", b"Bearer " + token.encode()))
    else:
        headers.insert(at, (b"cookie", b"theme=dark; jwt=" + token.encode()))
        headers.insert(0, (b"origin", SITE.encode()))  # the site's own page opened the socket
    return RawScope(noise.subprotocols, noise.query_string, headers)
