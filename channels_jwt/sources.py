"""Token sources: one object per place a client can put its token, behind one interface.

A source *takes* its credential out of the credential-bearing parts of a WebSocket scope (the
offered subprotocols, the query string, the headers), returning the token it found and the
parts without it; and it *presents* a token the way a client would (``channels_jwt.testing``).
Adding a source is one new class here and one entry in :data:`BY_NAME`.

Pure functions of the scope: no Django, no I/O. Every limit is checked before any parsing
work proportional to the input, so hostile handshakes cost almost nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple
from urllib.parse import quote, unquote, unquote_to_bytes

from channels_jwt.exceptions import TokenMalformed
from channels_jwt.types import Headers, Scope

if TYPE_CHECKING:
    from channels_jwt.conf import Config

MAX_SUBPROTOCOLS = 16
MAX_QUERY_STRING_BYTES = 8192
MAX_QUERY_FIELDS = 100


@dataclass(frozen=True)
class ExtractionRules:
    """Where to look for a credential and what it may look like."""

    sources: Sequence[str]
    subprotocol: str
    query_param: str
    header_scheme: str
    cookie_name: str | None
    max_token_bytes: int
    #: Whether a cookie comes from a trusted page, given ``scope["scheme"]`` and the headers.
    trusted_origin: Callable[[str | None, Headers], bool]

    @classmethod
    def from_config(
        cls, config: Config, trusted_origin: Callable[[str | None, Headers], bool]
    ) -> ExtractionRules:
        """The rules of ``config``, with ``trusted_origin`` judging a cookie's page."""
        return cls(
            sources=config.TOKEN_SOURCES,
            subprotocol=config.SUBPROTOCOL,
            query_param=config.QUERY_PARAM,
            header_scheme=config.HEADER_SCHEME,
            cookie_name=config.COOKIE_NAME,
            max_token_bytes=config.MAX_TOKEN_BYTES,
            trusted_origin=trusted_origin,
        )


class CredentialParts(NamedTuple):
    """The parts of a WebSocket scope that can carry a credential, and its scheme.

    The scheme (``scope["scheme"]``, ``None`` when absent) carries none, but a cookie's
    ``Origin`` is judged against it. Sources change the other parts with ``_replace``.
    """

    subprotocols: list[str]
    query_string: bytes
    headers: Headers
    scheme: str | None

    @classmethod
    def of(cls, scope: Mapping[str, Any]) -> CredentialParts:
        """The parts of ``scope`` (copied: sources never change the scope they read)."""
        return cls(
            list(scope.get("subprotocols") or ()),
            scope.get("query_string") or b"",
            list(scope.get("headers") or ()),
            scope.get("scheme"),
        )


class TokenSource(ABC):
    """One place a token can be: its name in ``TOKEN_SOURCES`` and how to take it out."""

    name: ClassVar[str]

    @abstractmethod
    def take(
        self, parts: CredentialParts, rules: ExtractionRules
    ) -> tuple[str | None, CredentialParts]:
        """The token this source holds (``None`` or ``""`` if none) and ``parts`` without it.

        Raises :class:`TokenMalformed` for an ambiguous, oversized or non-ASCII credential.
        """

    @abstractmethod
    def remove(self, parts: CredentialParts, rules: ExtractionRules) -> CredentialParts:
        """``parts`` without anything this source would read, unjudged; never raises.

        For the sources not in ``TOKEN_SOURCES``: a credential there is not used, and must
        not reach the application either.
        """

    @abstractmethod
    def present(self, scope: Scope, token: str, rules: ExtractionRules, origin: str) -> None:
        """Put ``token`` into ``scope`` where a client using this source would send it.

        ``origin`` is the ``Origin`` of the page sending it, for a source a browser sends from
        a page (the cookie); the others ignore it.
        """


def checked(token: str, rules: ExtractionRules) -> str:
    """``token`` if it is ASCII and within ``MAX_TOKEN_BYTES``."""
    if len(token) > rules.max_token_bytes:
        raise TokenMalformed("token larger than MAX_TOKEN_BYTES")
    if not token.isascii():
        raise TokenMalformed("token is not ASCII")
    return token


class SubprotocolSource(TokenSource):
    """``Sec-WebSocket-Protocol: <marker>, <token>``: the entry after the marker."""

    name = "subprotocol"

    def take(
        self, parts: CredentialParts, rules: ExtractionRules
    ) -> tuple[str | None, CredentialParts]:
        subprotocols = parts.subprotocols
        if len(subprotocols) > MAX_SUBPROTOCOLS:
            raise TokenMalformed("too many subprotocols offered")
        if rules.subprotocol not in subprotocols:
            headers = _without_subprotocol_header(parts.headers, rules.subprotocol, None)
            return None, parts._replace(headers=headers)
        if len(set(subprotocols)) != len(subprotocols):
            raise TokenMalformed("a subprotocol offered more than once")
        marker_at = subprotocols.index(rules.subprotocol)
        token = subprotocols[marker_at + 1] if marker_at + 1 < len(subprotocols) else ""
        remaining = subprotocols[:marker_at] + subprotocols[marker_at + 2 :]
        token = checked(token, rules)
        headers = _without_subprotocol_header(parts.headers, rules.subprotocol, token)
        return token, parts._replace(subprotocols=remaining, headers=headers)

    def remove(self, parts: CredentialParts, rules: ExtractionRules) -> CredentialParts:
        subprotocols = list(parts.subprotocols)
        dropped = {rules.subprotocol}
        while rules.subprotocol in subprotocols:
            marker_at = subprotocols.index(rules.subprotocol)
            dropped.update(subprotocols[marker_at + 1 : marker_at + 2])
            del subprotocols[marker_at : marker_at + 2]
        headers = _without_subprotocol_header(parts.headers, *dropped)
        return parts._replace(subprotocols=subprotocols, headers=headers)

    def present(self, scope: Scope, token: str, rules: ExtractionRules, origin: str) -> None:
        scope["subprotocols"] += [rules.subprotocol, token]


def _without_subprotocol_header(headers: Headers, *dropped: str | None) -> Headers:
    """``headers`` with every ``Sec-WebSocket-Protocol`` entry in ``dropped`` left out.

    In any encoding a server may decode: daphne percent-decodes the whole header before
    splitting it into ``subprotocols`` (so ``%65yJ...`` is ``eyJ...``, and ``a%2Cb`` is two
    entries) but hands the application the raw header.
    """
    unwanted = {entry for entry in dropped if entry}
    rewritten: Headers = []
    for header in headers:
        name, value = header
        if name.lower() == b"sec-websocket-protocol":
            kept = [
                entry
                for entry in (part.strip() for part in value.decode("latin-1").split(","))
                if entry and not _names_one_of(entry, unwanted)
            ]
            if kept:
                rewritten.append((name, ", ".join(kept).encode("latin-1")))
        else:
            rewritten.append(header)  # the server's own tuple: held for the socket's life
    return rewritten


def _names_one_of(entry: str, unwanted: set[str]) -> bool:
    if entry in unwanted:
        return True
    if "%" not in entry:
        return False
    return any(part.strip() in unwanted for part in unquote(entry).split(","))


class QuerySource(TokenSource):
    """``?<QUERY_PARAM>=<token>`` in the query string (form-encoded, exactly once)."""

    name = "query"

    def take(
        self, parts: CredentialParts, rules: ExtractionRules
    ) -> tuple[str | None, CredentialParts]:
        query_string = parts.query_string
        if len(query_string) > MAX_QUERY_STRING_BYTES:
            raise TokenMalformed("query string larger than 8 KiB")
        if not query_string:
            return None, parts
        fields = query_string.split(b"&")
        if len(fields) > MAX_QUERY_FIELDS:
            raise TokenMalformed("too many query string fields")
        values, kept = _query_fields(fields, rules.query_param)
        if not values:
            return None, parts
        if len(values) > 1:
            raise TokenMalformed("token query parameter repeated")
        decoded = _form_decode(values[0])
        if not decoded.isascii():
            raise TokenMalformed("token query parameter is not ASCII")
        return checked(decoded.decode("ascii"), rules), parts._replace(query_string=b"&".join(kept))

    def remove(self, parts: CredentialParts, rules: ExtractionRules) -> CredentialParts:
        values, kept = _query_fields(parts.query_string.split(b"&"), rules.query_param)
        if not values:
            return parts
        return parts._replace(query_string=b"&".join(kept))

    def present(self, scope: Scope, token: str, rules: ExtractionRules, origin: str) -> None:
        field = f"{rules.query_param}={quote(token)}".encode()
        scope["query_string"] = b"&".join(filter(None, [scope["query_string"], field]))


def _query_fields(fields: list[bytes], param: str) -> tuple[list[bytes], list[bytes]]:
    """The raw values of the ``param`` fields, and the other fields."""
    wanted = param.encode()
    values: list[bytes] = []
    kept: list[bytes] = []
    for field in fields:
        name, _, value = field.partition(b"=")
        if _form_decode(name) == wanted:
            values.append(value)
        else:
            kept.append(field)
    return values, kept


def _form_decode(value: bytes) -> bytes:
    """Decode one ``application/x-www-form-urlencoded`` name or value, exactly once."""
    return unquote_to_bytes(value.replace(b"+", b" "))


class HeaderSource(TokenSource):
    """``Authorization: <HEADER_SCHEME> <token>``."""

    name = "header"

    def take(
        self, parts: CredentialParts, rules: ExtractionRules
    ) -> tuple[str | None, CredentialParts]:
        tokens, kept = _bearer_headers(parts.headers, rules.header_scheme)
        if not tokens:
            return None, parts
        if len(tokens) > 1:
            raise TokenMalformed("more than one Authorization header")
        return checked(tokens[0], rules), parts._replace(headers=kept)

    def remove(self, parts: CredentialParts, rules: ExtractionRules) -> CredentialParts:
        tokens, kept = _bearer_headers(parts.headers, rules.header_scheme)
        return parts._replace(headers=kept) if tokens else parts

    def present(self, scope: Scope, token: str, rules: ExtractionRules, origin: str) -> None:
        scope["headers"].append((b"authorization", f"{rules.header_scheme} {token}".encode()))


def _bearer_headers(headers: Headers, scheme: str) -> tuple[list[str], Headers]:
    """The credentials of the ``Authorization: <scheme> ...`` headers, and the other headers."""
    wanted = scheme.lower()
    tokens: list[str] = []
    kept: Headers = []
    for header in headers:
        name, value = header
        if name.lower() == b"authorization":
            given_scheme, _, credential = value.decode("latin-1").partition(" ")
            if given_scheme.lower() == wanted:
                tokens.append(credential.strip(" "))
                continue
        kept.append(header)
    return tokens, kept


class CookieSource(TokenSource):
    """The ``COOKIE_NAME`` cookie, counted only when the page's ``Origin`` is trusted.

    ``rules.trusted_origin`` judges the handshake's scheme and headers (``Host``, ``Origin``);
    an untrusted cookie counts as absent, and is removed all the same.
    """

    name = "cookie"

    def take(
        self, parts: CredentialParts, rules: ExtractionRules
    ) -> tuple[str | None, CredentialParts]:
        values, without = _cookies(parts, rules.cookie_name)
        if not values:
            return None, parts
        if not rules.trusted_origin(without.scheme, without.headers):
            return None, without
        if len(values) > 1:
            raise TokenMalformed("token cookie repeated")
        return checked(values[0], rules), without

    def remove(self, parts: CredentialParts, rules: ExtractionRules) -> CredentialParts:
        return _cookies(parts, rules.cookie_name)[1]

    def present(self, scope: Scope, token: str, rules: ExtractionRules, origin: str) -> None:
        scope["headers"].append((b"cookie", f"{rules.cookie_name}={token}".encode()))
        scope["headers"].append((b"origin", origin.encode()))


def _cookies(parts: CredentialParts, cookie_name: str | None) -> tuple[list[str], CredentialParts]:
    """The values of the ``cookie_name`` cookies, and ``parts`` without them."""
    if not cookie_name:
        return [], parts
    values: list[str] = []
    kept: Headers = []
    for header in parts.headers:
        name, value = header
        if name.lower() != b"cookie":
            kept.append(header)
            continue
        remaining = []
        for pair in value.decode("latin-1").split(";"):
            pair_name, _, pair_value = pair.strip().partition("=")
            if pair_name == cookie_name:
                values.append(pair_value.strip().strip('"'))
            elif pair.strip():
                remaining.append(pair.strip())
        if remaining:
            kept.append((name, "; ".join(remaining).encode("latin-1")))
    if not values:
        return [], parts
    return values, parts._replace(headers=kept)


class MessageSource(TokenSource):
    """The first WebSocket frame (``channels_jwt.firstmessage``): nothing in the handshake.

    The middleware reads that frame itself, once the handshake has offered no credential;
    ``channels_jwt.testing`` sends it after connecting.
    """

    name = "message"

    def take(
        self, parts: CredentialParts, rules: ExtractionRules
    ) -> tuple[str | None, CredentialParts]:
        return None, parts

    def remove(self, parts: CredentialParts, rules: ExtractionRules) -> CredentialParts:
        return parts

    def present(self, scope: Scope, token: str, rules: ExtractionRules, origin: str) -> None:
        return None


#: Every source by its ``TOKEN_SOURCES`` name.
BY_NAME: Mapping[str, TokenSource] = {
    source.name: source
    for source in (
        SubprotocolSource(),
        QuerySource(),
        HeaderSource(),
        CookieSource(),
        MessageSource(),
    )
}
#: The names ``TOKEN_SOURCES`` accepts.
SOURCES = tuple(BY_NAME)
#: The sources a WebSocket handshake itself carries (all but the first message).
HANDSHAKE_SOURCES = tuple(name for name in SOURCES if name != MessageSource.name)
