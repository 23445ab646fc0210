"""Find the credential in a WebSocket scope and remove it from what the app will see.

Pure functions of the scope: no Django, no I/O. Every limit is checked before any parsing
work proportional to the input, so hostile handshakes cost almost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from channels_jwt.exceptions import TokenMalformed

SOURCES = ("subprotocol", "query", "header", "cookie")
MAX_SUBPROTOCOLS = 16
MAX_QUERY_STRING_BYTES = 8192
MAX_QUERY_FIELDS = 100

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class ExtractionRules:
    """Where to look for a credential and what it may look like."""

    sources: Sequence[str]
    subprotocol: str
    query_param: str
    header_scheme: str
    cookie_name: str | None
    max_token_bytes: int
    trusted_origin: Callable[[str | None], bool]


@dataclass(frozen=True, slots=True)
class Extraction:
    """The credential found in a scope (if any) and the scope's parts rewritten without it."""

    token: str | None
    source: str | None
    subprotocols: list[str]
    query_string: bytes
    headers: Headers
    marker_offered: bool


@dataclass(frozen=True)
class _Found:
    source: str
    token: str


def extract_token(scope: Mapping[str, Any], rules: ExtractionRules) -> Extraction:
    """Look through ``rules.sources`` and return the single credential presented.

    Raises :class:`TokenMalformed` when the credential is ambiguous (more than one source,
    a repeated parameter or marker), too large, or not ASCII. An empty credential counts as
    none. The credential is removed from every source that was searched, whether or not it is
    used, so the raw token never reaches the inner application.
    """
    subprotocols = list(scope.get("subprotocols") or ())
    query_string: bytes = scope.get("query_string") or b""
    headers: Headers = list(scope.get("headers") or ())
    marker_offered = rules.subprotocol in subprotocols
    found: list[_Found] = []

    for source in rules.sources:
        token: str | None
        if source == "subprotocol":
            token, subprotocols = _from_subprotocols(subprotocols, rules)
            headers = _without_subprotocol_header(headers, rules.subprotocol, token)
        elif source == "query":
            token, query_string = _from_query_string(query_string, rules)
        elif source == "header":
            token, headers = _from_authorization(headers, rules)
        else:
            token, headers = _from_cookie(headers, rules)
        if token:
            found.append(_Found(source, token))

    if len(found) > 1:
        raise TokenMalformed("credentials presented in more than one source")
    first = found[0] if found else None
    return Extraction(
        first.token if first else None,
        first.source if first else None,
        subprotocols,
        query_string,
        headers,
        marker_offered,
    )


def _checked(token: str, rules: ExtractionRules) -> str:
    if len(token) > rules.max_token_bytes:
        raise TokenMalformed("token larger than MAX_TOKEN_BYTES")
    if not token.isascii():
        raise TokenMalformed("token is not ASCII")
    return token


def _from_subprotocols(
    subprotocols: list[str], rules: ExtractionRules
) -> tuple[str | None, list[str]]:
    if len(subprotocols) > MAX_SUBPROTOCOLS:
        raise TokenMalformed("too many subprotocols offered")
    if rules.subprotocol not in subprotocols:
        return None, subprotocols
    if len(set(subprotocols)) != len(subprotocols):
        raise TokenMalformed("a subprotocol offered more than once")
    marker_at = subprotocols.index(rules.subprotocol)
    token = subprotocols[marker_at + 1] if marker_at + 1 < len(subprotocols) else ""
    remaining = subprotocols[:marker_at] + subprotocols[marker_at + 2 :]
    return _checked(token, rules), remaining


def _without_subprotocol_header(headers: Headers, marker: str, token: str | None) -> Headers:
    dropped = {marker, token} if token else {marker}
    rewritten: Headers = []
    for name, value in headers:
        if name.lower() == b"sec-websocket-protocol":
            kept = [
                entry
                for entry in (part.strip() for part in value.decode("latin-1").split(","))
                if entry and entry not in dropped
            ]
            if not kept:
                continue
            value = ", ".join(kept).encode("latin-1")
        rewritten.append((name, value))
    return rewritten


def _from_query_string(query_string: bytes, rules: ExtractionRules) -> tuple[str | None, bytes]:
    if len(query_string) > MAX_QUERY_STRING_BYTES:
        raise TokenMalformed("query string larger than 8 KiB")
    if not query_string:
        return None, query_string
    fields = query_string.split(b"&")
    if len(fields) > MAX_QUERY_FIELDS:
        raise TokenMalformed("too many query string fields")
    wanted = rules.query_param.encode()
    values: list[bytes] = []
    kept: list[bytes] = []
    for field in fields:
        name, _, value = field.partition(b"=")
        if _form_decode(name) == wanted:
            values.append(value)
        else:
            kept.append(field)
    if not values:
        return None, query_string
    if len(values) > 1:
        raise TokenMalformed("token query parameter repeated")
    decoded = _form_decode(values[0])
    try:
        token = decoded.decode("ascii")
    except UnicodeDecodeError:
        raise TokenMalformed("token query parameter is not ASCII") from None
    return _checked(token, rules), b"&".join(kept)


def _form_decode(value: bytes) -> bytes:
    """Decode one ``application/x-www-form-urlencoded`` name or value, exactly once."""
    return unquote_to_bytes(value.replace(b"+", b" "))


def _from_authorization(headers: Headers, rules: ExtractionRules) -> tuple[str | None, Headers]:
    scheme = rules.header_scheme.lower()
    tokens: list[str] = []
    kept: Headers = []
    for name, value in headers:
        if name.lower() == b"authorization":
            given_scheme, _, credential = value.decode("latin-1").partition(" ")
            if given_scheme.lower() == scheme:
                tokens.append(credential.strip(" "))
                continue
        kept.append((name, value))
    if not tokens:
        return None, headers
    if len(tokens) > 1:
        raise TokenMalformed("more than one Authorization header")
    return _checked(tokens[0], rules), kept


def _from_cookie(headers: Headers, rules: ExtractionRules) -> tuple[str | None, Headers]:
    name_wanted = rules.cookie_name
    if not name_wanted:
        return None, headers
    values: list[str] = []
    kept: Headers = []
    for name, value in headers:
        if name.lower() != b"cookie":
            kept.append((name, value))
            continue
        remaining = []
        for pair in value.decode("latin-1").split(";"):
            cookie_name, _, cookie_value = pair.strip().partition("=")
            if cookie_name == name_wanted:
                values.append(cookie_value.strip().strip('"'))
            elif pair.strip():
                remaining.append(pair.strip())
        if remaining:
            kept.append((name, "; ".join(remaining).encode("latin-1")))
    if not values:
        return None, headers
    if not rules.trusted_origin(_origin(headers)):
        return None, kept
    if len(values) > 1:
        raise TokenMalformed("token cookie repeated")
    return _checked(values[0], rules), kept


def _origin(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"origin":
            return value.decode("latin-1")
    return None
