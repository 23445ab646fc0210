"""Find the one credential a WebSocket scope presents, and the scope's parts without it.

Each name in ``TOKEN_SOURCES`` is a :class:`~channels_jwt.sources.TokenSource`; this module
asks them in order and refuses ambiguity. Pure functions of the scope: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from channels_jwt.exceptions import TokenMalformed
from channels_jwt.sources import BY_NAME, CredentialParts, ExtractionRules
from channels_jwt.types import Headers


@dataclass(frozen=True, slots=True)
class Extraction:
    """The credential found in a scope (if any) and the scope's parts rewritten without it."""

    token: str | None = field(repr=False)
    source: str | None
    subprotocols: list[str]
    query_string: bytes
    headers: Headers
    marker_offered: bool


def extract_token(scope: Mapping[str, Any], rules: ExtractionRules) -> Extraction:
    """Look through ``rules.sources`` and return the single credential presented.

    Raises :class:`TokenMalformed` when the credential is ambiguous (more than one source,
    a repeated parameter or marker), too large, or not ASCII. An empty credential counts as
    none. Every credential is removed from the scope parts, from the sources that were searched
    and from the others too, whether or not it is used: no token reaches the inner application.
    """
    parts = CredentialParts.of(scope)
    marker_offered = rules.subprotocol in parts.subprotocols
    found: list[tuple[str, str]] = []
    for name in rules.sources:
        token, parts = BY_NAME[name].take(parts, rules)
        if token:
            found.append((name, token))
    for name, source in BY_NAME.items():
        if name not in rules.sources:
            parts = source.remove(parts, rules)
    if len(found) > 1:
        raise TokenMalformed("credentials presented in more than one source")
    return Extraction(
        found[0][1] if found else None,
        found[0][0] if found else None,
        parts.subprotocols,
        parts.query_string,
        parts.headers,
        marker_offered,
    )
