"""The catalogue's transport rows as data: hostile scopes (where and how a token is
presented) and the accepted controls; run by ``test_rows.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.catalogue.kit import (
    ACCEPT,
    MALFORMED,
    MARKER,
    MISSING,
    OVERSIZED_SECONDS,
    Attempt,
    Kit,
    ScopeRow,
    inserted,
    query,
    token_param,
    ws_scope,
)


def without_token(**scope: Any) -> Callable[[Kit], Attempt]:
    """A fixed scope that carries no valid token."""
    return lambda kit: Attempt(ws_scope(**scope))


def subprotocols_attempt(
    entries: Callable[[str], list[str]], **inner_scope: Any
) -> Callable[[Kit], Attempt]:
    """A scope offering ``entries(valid_token)`` as subprotocols."""

    def build(kit: Kit) -> Attempt:
        token = kit.hs()
        scope = ws_scope(subprotocols=entries(token))
        return Attempt(scope, (token,), "subprotocol", inner_scope)

    return build


def query_attempt(raw: Callable[[str], bytes], **inner_scope: Any) -> Callable[[Kit], Attempt]:
    """A scope whose raw query string is ``raw(valid_token)``."""

    def build(kit: Kit) -> Attempt:
        token = kit.hs()
        return Attempt(ws_scope(query_string=raw(token)), (token,), "query", inner_scope)

    return build


def both_attempt(kit: Kit, *, same: bool) -> Attempt:
    """A token in the query string and another (or the same) in the subprotocol (X11)."""
    first = kit.hs()
    second = first if same else kit.hs()
    scope = ws_scope(subprotocols=[MARKER, second], query_string=token_param(first))
    return Attempt(scope, (first, second))


def header_attempt(
    *values: Callable[[str], bytes], query_too: bool = False
) -> Callable[[Kit], Attempt]:
    """A scope with one ``Authorization`` header per value (X19)."""

    def build(kit: Kit) -> Attempt:
        token = kit.hs()
        headers = [(b"authorization", value(token)) for value in values]
        qs = token_param(token) if query_too else b""
        return Attempt(ws_scope(headers=headers, query_string=qs), (token,), "header")

    return build


def bearer(token: str) -> bytes:
    """An ``Authorization`` header value."""
    return b"Bearer " + token.encode()


def repeated_protocol_header(kit: Kit) -> Attempt:
    """Two ``Sec-WebSocket-Protocol`` lines; the scope has the merged list (X18)."""
    token = kit.hs()
    scope = ws_scope(
        headers=[
            (b"sec-websocket-protocol", MARKER.encode()),
            (b"sec-websocket-protocol", token.encode()),
        ]
    )
    scope["subprotocols"] = [MARKER, token]
    return Attempt(scope, (token,), "subprotocol")


HEADER_SOURCE = {"TOKEN_SOURCES": ["subprotocol", "query", "header"]}


def unused_copy_attempt(header: Callable[[str], tuple[bytes, bytes]]) -> Callable[[Kit], Attempt]:
    """``?token=`` (used) plus a copy in a place that is not a source (X20, X21)."""

    def build(kit: Kit) -> Attempt:
        token = kit.hs()
        scope = ws_scope(query_string=token_param(token), headers=[header(token)])
        return Attempt(scope, (token,), "query")

    return build


COOKIE_SOURCE = {"TOKEN_SOURCES": ["cookie"], "COOKIE_NAME": "jwt"}


def cookie_attempt(
    origin: bytes | None, *, scheme: str = "ws", host: bytes | None = b"testserver"
) -> Callable[[Kit], Attempt]:
    """The token cookie sent from a page at ``origin`` to ``host`` over ``scheme`` (X23).

    The site is the test settings' (``ALLOWED_HOSTS``: testserver, localhost, 127.0.0.1).
    """

    def build(kit: Kit) -> Attempt:
        token = kit.hs()
        scope = ws_scope(headers=[(b"cookie", b"theme=dark; jwt=" + token.encode())])
        scope["scheme"] = scheme
        scope["headers"] = [(name, value) for name, value in scope["headers"] if name != b"host"]
        scope["headers"] += [(b"host", host)] if host is not None else []
        scope["headers"] += [(b"origin", origin)] if origin is not None else []
        return Attempt(scope, (token,), "cookie")

    return build


def daphne_encoded_subprotocol(kit: Kit) -> Attempt:
    """The token offered percent-encoded: daphne decodes ``subprotocols``, not the header (X22)."""
    token = kit.hs()
    encoded = f"%{ord(token[0]):02X}{token[1:]}"
    scope = ws_scope(headers=[(b"sec-websocket-protocol", f"{MARKER}, {encoded}".encode())])
    scope["subprotocols"] = [MARKER, token]
    return Attempt(scope, (token, encoded), "subprotocol")


SCOPE_ROWS: list[ScopeRow] = [
    ScopeRow("X01-no-credential", without_token(), MISSING),
    ScopeRow("X01-unrelated-subprotocol-only", without_token(subprotocols=["chat"]), MISSING),
    ScopeRow(
        "X02-repeated-token-param-valid-first",
        query_attempt(lambda t: query(token_param(t), b"token=garbage")),
        MALFORMED,
    ),
    ScopeRow(
        "X02-repeated-token-param-valid-last",
        query_attempt(lambda t: query(b"token=garbage", token_param(t))),
        MALFORMED,
    ),
    ScopeRow(
        "X02-repeated-token-param-identical",
        query_attempt(lambda t: query(token_param(t), token_param(t))),
        MALFORMED,
    ),
    ScopeRow(
        "X03-double-percent-encoding",
        query_attempt(lambda t: b"token=%25" + f"{ord(t[0]):02X}".encode() + t[1:].encode()),
        MALFORMED,
    ),
    ScopeRow(
        "X04-plus-in-value",
        query_attempt(lambda t: b"token=" + inserted(t, 10, "+").encode()),
        MALFORMED,
    ),
    ScopeRow(
        "X06-access_token-name", query_attempt(lambda t: b"access_token=" + t.encode()), MISSING
    ),
    ScopeRow("X06-capitalised-name", query_attempt(lambda t: b"Token=" + t.encode()), MISSING),
    ScopeRow("X06-xtoken-name", query_attempt(lambda t: b"xtoken=" + t.encode()), MISSING),
    ScopeRow("X06-bracketed-name", query_attempt(lambda t: b"token[]=" + t.encode()), MISSING),
    ScopeRow(
        "X07-semicolon-separator",
        query_attempt(lambda t: token_param(t) + b";token=garbage"),
        MALFORMED,
    ),
    ScopeRow("X08-raw-invalid-utf8", without_token(query_string=b"token=\xff\xfe"), MALFORMED),
    ScopeRow("X08-raw-non-ascii", without_token(query_string="token=\u00e9".encode()), MALFORMED),
    ScopeRow("X09-percent-00-inside", without_token(query_string=b"token=ab%00cd"), MALFORMED),
    ScopeRow("X09-percent-ff", without_token(query_string=b"token=%ff"), MALFORMED),
    ScopeRow(
        "X10-1mb-query-string",
        lambda k: Attempt(ws_scope(query_string=b"token=" + b"A" * 1_000_000), ("A" * 1_000_000,)),
        MALFORMED,
        seconds=OVERSIZED_SECONDS,
    ),
    ScopeRow(
        "X10-10000-fields-over-8kib",
        query_attempt(lambda t: b"a=1&" * 10_000 + token_param(t)),
        MALFORMED,
    ),
    ScopeRow(
        "X10-151-fields-under-8kib",
        query_attempt(lambda t: b"a&" * 150 + token_param(t)),
        MALFORMED,
    ),
    ScopeRow(
        "X11-same-token-query-and-subprotocol", lambda k: both_attempt(k, same=True), MALFORMED
    ),
    ScopeRow(
        "X11-two-tokens-query-and-subprotocol", lambda k: both_attempt(k, same=False), MALFORMED
    ),
    ScopeRow("X13-bare-token-without-marker", subprotocols_attempt(lambda t: [t]), MISSING),
    ScopeRow(
        "X14-marker-repeated",
        subprotocols_attempt(lambda t: [MARKER, t, MARKER, t + "x"]),
        MALFORMED,
    ),
    ScopeRow(
        "X14-same-token-offered-twice", subprotocols_attempt(lambda t: [MARKER, t, t]), MALFORMED
    ),
    ScopeRow(
        "X15-1000-subprotocols",
        subprotocols_attempt(lambda t: [MARKER, *(f"p{i}" for i in range(1000)), t]),
        MALFORMED,
    ),
    ScopeRow(
        "X15-17-subprotocols",
        subprotocols_attempt(lambda t: [*(f"p{i}" for i in range(15)), MARKER, t]),
        MALFORMED,
    ),
    ScopeRow(
        "X16-padded-token-entry", subprotocols_attempt(lambda t: [MARKER, t + "="]), MALFORMED
    ),
    ScopeRow("X16-space-in-entry", without_token(subprotocols=[MARKER, "a b"]), MALFORMED),
    ScopeRow(
        "X16-quoted-token-entry", subprotocols_attempt(lambda t: [MARKER, '"' + t]), MALFORMED
    ),
    ScopeRow("X16-non-ascii-entry", without_token(subprotocols=[MARKER, "\u00e9"]), MALFORMED),
    ScopeRow(
        "X16-control-character-entry", without_token(subprotocols=[MARKER, "\x01"]), MALFORMED
    ),
    ScopeRow(
        "X16-trailing-comma-entry", subprotocols_attempt(lambda t: [MARKER, t + ","]), MALFORMED
    ),
    ScopeRow(
        "X17-percent-encoded-comma-entry",
        subprotocols_attempt(lambda t: [MARKER, inserted(t, 20, "%2C")]),
        MALFORMED,
    ),
    ScopeRow("X19-authorization-header-not-a-source", header_attempt(bearer), MISSING),
    ScopeRow(
        "X19-duplicate-authorization-header",
        header_attempt(bearer, bearer),
        MALFORMED,
        settings=HEADER_SOURCE,
    ),
    ScopeRow(
        "X19-authorization-header-and-query",
        header_attempt(bearer, query_too=True),
        MALFORMED,
        settings=HEADER_SOURCE,
    ),
    ScopeRow("X20-marker-without-token", without_token(subprotocols=[MARKER]), MISSING),
    ScopeRow("X20-marker-with-empty-token", without_token(subprotocols=[MARKER, ""]), MISSING),
    ScopeRow("X20-marker-last", without_token(subprotocols=["chat", MARKER]), MISSING),
    ScopeRow(
        "X23-cookie-from-another-port",
        cookie_attempt(b"http://testserver:8000"),
        MISSING,
        settings=COOKIE_SOURCE,
    ),
    ScopeRow(
        "X23-cookie-from-plain-http-page-over-wss",
        cookie_attempt(b"http://testserver", scheme="wss"),
        MISSING,
        settings=COOKIE_SOURCE,
    ),
    ScopeRow(
        "X23-cookie-from-another-allowed-host",
        cookie_attempt(b"http://localhost"),
        MISSING,
        settings=COOKIE_SOURCE,
    ),
    ScopeRow(
        "X23-cookie-to-a-host-not-allowed",
        cookie_attempt(b"http://evil.test", host=b"evil.test"),
        MISSING,
        settings=COOKIE_SOURCE,
    ),
    ScopeRow(
        "X23-cookie-without-host-header",
        cookie_attempt(b"http://testserver", host=None),
        MISSING,
        settings=COOKIE_SOURCE,
    ),
    ScopeRow(
        "X23-cookie-without-origin-header",
        cookie_attempt(None),
        MISSING,
        settings=COOKIE_SOURCE,
    ),
    ScopeRow("X23-cookie-null-origin", cookie_attempt(b"null"), MISSING, settings=COOKIE_SOURCE),
    # S rows that need raw query-string bytes
    ScopeRow(
        "S06-bearer-percent-20-prefix",
        query_attempt(lambda t: b"token=bearer%20" + t.encode()),
        MALFORMED,
    ),
    ScopeRow(
        "S08-raw-0xff-after-token",
        query_attempt(lambda t: b"token=" + t.encode() + b"\xff"),
        MALFORMED,
    ),
    ScopeRow(
        "S09-percent-00-in-query",
        query_attempt(lambda t: b"token=" + inserted(t, 10, "%00").encode()),
        MALFORMED,
    ),
]


ACCEPTED_SCOPE_ROWS: list[ScopeRow] = [
    ScopeRow(
        "X05-percent-encoded-dots",
        query_attempt(lambda t: b"token=" + t.replace(".", "%2E").encode()),
        ACCEPT,
    ),
    ScopeRow(
        "X05-every-byte-percent-encoded",
        query_attempt(lambda t: b"token=" + "".join(f"%{b:02X}" for b in t.encode()).encode()),
        ACCEPT,
    ),
    ScopeRow("X06-percent-encoded-name", query_attempt(lambda t: b"tok%65n=" + t.encode()), ACCEPT),
    ScopeRow(
        "X06-xtoken-ignored-beside-token",
        query_attempt(
            lambda t: query(b"xtoken=garbage", token_param(t), b"room=1"),
            query_string=b"xtoken=garbage&room=1",
        ),
        ACCEPT,
    ),
    ScopeRow(
        "X12-marker-after-app-subprotocol",
        subprotocols_attempt(lambda t: ["chat", MARKER, t], subprotocols=["chat"]),
        ACCEPT,
    ),
    ScopeRow(
        "X15-16-subprotocols",
        subprotocols_attempt(lambda t: [*(f"p{i}" for i in range(14)), MARKER, t]),
        ACCEPT,
    ),
    ScopeRow("X18-repeated-protocol-header-lines", repeated_protocol_header, ACCEPT),
    ScopeRow(
        "X19-authorization-header-source", header_attempt(bearer), ACCEPT, settings=HEADER_SOURCE
    ),
    ScopeRow(
        "X20-unused-bearer-copy-beside-query-token",
        unused_copy_attempt(lambda t: (b"authorization", bearer(t))),
        ACCEPT,
    ),
    ScopeRow(
        "X21-unused-cookie-copy-beside-query-token",
        unused_copy_attempt(lambda t: (b"cookie", b"theme=dark; jwt=" + t.encode())),
        ACCEPT,
        settings={"COOKIE_NAME": "jwt"},
    ),
    ScopeRow("X22-daphne-percent-encoded-subprotocol", daphne_encoded_subprotocol, ACCEPT),
    ScopeRow(
        "X23-cookie-from-own-origin",
        cookie_attempt(b"http://testserver"),
        ACCEPT,
        settings=COOKIE_SOURCE,
    ),
    ScopeRow(
        "X23-cookie-from-own-origin-over-wss-default-port",
        cookie_attempt(b"https://testserver", scheme="wss", host=b"testserver:443"),
        ACCEPT,
        settings=COOKIE_SOURCE,
    ),
]
