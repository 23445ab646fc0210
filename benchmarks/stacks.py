"""The stacks under test: one consumer, wrapped by each authentication middleware.

Every stack wraps the same trivial consumer, which accepts and sends one frame naming the
user it was given (so each handshake also checks that authentication worked). There is no
``URLRouter`` in front of it: the no-auth baseline is as cheap as a Channels handshake gets,
which makes every ratio to it as large (as unflattering) as it can honestly be.

Two stacks list ``"message"`` in ``TOKEN_SOURCES`` after the handshake sources: one client
sends its token in the first frame (``MESSAGE_FORMAT="json"``: the socket is accepted by the
middleware, then the client sends ``{"type": "authenticate", ...}`` and waits for the
greeting), the other still sends it in the subprotocol (what enabling the source costs the
clients that do not use it).

Call :func:`build_stacks` after ``django.setup()``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from benchmarks.fixtures import Fixtures
from channels_jwt.firstmessage import AUTHENTICATE

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
TOKEN_USER = "channels_jwt.users.token_user"  # noqa: S105 - a dotted path
#: The default ``TOKEN_SOURCES``, then the first message.
WITH_MESSAGE = ["subprotocol", "query", "message"]


class HelloConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Accepts, then sends one frame: ``user:<pk>``, or ``user:-`` without a user."""

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        authenticated = user is not None and user.is_authenticated
        await self.send(text_data=f"user:{user.pk if authenticated else '-'}")


@dataclass(frozen=True)
class Stack:
    """One configuration: how it is built, what the client presents, what it gets back."""

    name: str
    label: str
    #: "none", "session", or a key of ``Fixtures.tokens``.
    credential: str
    #: Close code the middleware must answer with; ``None`` for an accepted handshake.
    rejects_with: int | None = None
    #: The token goes in the first frame (``"json"`` format), not in the handshake.
    first_message: bool = False

    def client_request(self, fixtures: Fixtures) -> tuple[list[str], list[tuple[bytes, bytes]]]:
        """``(subprotocols, headers)`` a client offers for this stack."""
        if self.credential == "none" or self.first_message:
            return [], []
        if self.credential == "session":
            return [], [(b"cookie", f"sessionid={fixtures.session_key}".encode())]
        return ["access_token", fixtures.tokens[self.credential]], []

    def first_frame(self, fixtures: Fixtures) -> str | None:
        """The frame a client sends once the socket is open, before it waits for one."""
        if not self.first_message:
            return None
        return json.dumps({"type": AUTHENTICATE, "token": fixtures.tokens[self.credential]})

    def expected_frame(self, fixtures: Fixtures) -> str:
        """The one frame an accepted handshake receives."""
        return "user:-" if self.credential == "none" else f"user:{fixtures.user_pk}"


STACKS: tuple[Stack, ...] = (
    Stack("noauth", "no auth (baseline)", "none"),
    Stack("session", "channels AuthMiddlewareStack, session cookie", "session"),
    Stack("hs256_db", "channels_jwt HS256 + database_user", "HS256"),
    Stack("hs256_token", "channels_jwt HS256 + token_user", "HS256"),
    Stack("hs256_db_cached", "channels_jwt HS256 + database_user, USER_CACHE_SECONDS", "HS256"),
    Stack("rs256_token", "channels_jwt RS256 + token_user", "RS256"),
    Stack("es256_token", "channels_jwt ES256 + token_user", "ES256"),
    Stack("eddsa_token", "channels_jwt EdDSA + token_user", "EdDSA"),
    Stack("garbage", "channels_jwt, garbage token rejected (4400)", "garbage", 4400),
    Stack("badsig", "channels_jwt, wrong-key HS256 token rejected (4401)", "badsig", 4401),
    Stack(
        "hs256_db_message",
        "channels_jwt HS256 + database_user, token in the first message",
        "HS256",
        first_message=True,
    ),
    Stack(
        "hs256_db_msg_enabled",
        'channels_jwt HS256 + database_user, "message" source on, subprotocol client',
        "HS256",
    ),
)
BY_NAME: Mapping[str, Stack] = {stack.name: stack for stack in STACKS}


def build_stacks(keys: Mapping[str, Any]) -> dict[str, ASGIApp]:
    """One ASGI application per stack name (built once; requires ``django.setup()``)."""
    from channels.auth import AuthMiddlewareStack

    from channels_jwt import JWTAuthMiddlewareStack

    consumer = HelloConsumer.as_asgi()
    # The project-wide CHANNELS_JWT (benchmarks/settings.py): HS256 and the default resolver,
    # database_user. This is what `JWTAuthMiddlewareStack(router)` gives a new project.
    default = JWTAuthMiddlewareStack(consumer)
    # The same, with "message" after the default sources (MESSAGE_FORMAT "json", the default).
    with_message = JWTAuthMiddlewareStack(
        consumer, settings={"TOKEN_SOURCES": WITH_MESSAGE, "MESSAGE_FORMAT": "json"}
    )

    def asymmetric(algorithm: str) -> ASGIApp:
        return JWTAuthMiddlewareStack(
            consumer,
            settings={
                "ALGORITHMS": [algorithm],
                "VERIFYING_KEY": keys[algorithm]["public"],
                "USER_RESOLVER": TOKEN_USER,
            },
        )

    return {
        "noauth": consumer,
        "session": AuthMiddlewareStack(consumer),
        "hs256_db": default,
        "hs256_token": JWTAuthMiddlewareStack(consumer, settings={"USER_RESOLVER": TOKEN_USER}),
        "hs256_db_cached": JWTAuthMiddlewareStack(consumer, settings={"USER_CACHE_SECONDS": 300}),
        "rs256_token": asymmetric("RS256"),
        "es256_token": asymmetric("ES256"),
        "eddsa_token": asymmetric("EdDSA"),
        "garbage": default,
        "badsig": default,
        "hs256_db_message": with_message,
        "hs256_db_msg_enabled": with_message,
    }
