"""A tiny ASGI application for the live servers (``tests.live.servers.SERVERS``).

Routes (each accepts any path suffix, so a test can tag its connection's path and find it in
the log):

- ``/ws/echo/``: ``JWTAuthMiddlewareStack`` (``REJECT_MODE="close"``);
- ``/ws/deny/``: a ``JWTAuthMiddleware`` instance with ``REJECT_MODE="deny"``;
- ``/ws/deny-down/``: the same, with a user lookup that always fails (4503, so HTTP 503);
- ``/ws/revocable/``: close mode with a ``REVOCATION_CHECK`` that calls every token whose
  ``jti`` starts with :data:`REVOKED_JTI_PREFIX` revoked (4441);
- ``/ws/cookie/``: close mode with the cookie (:data:`COOKIE_NAME`) as the only source;
- ``/ws/refuse/``: no authentication; the consumer closes *before* accepting, which is what
  every server turns into a plain HTTP refusal.

The authenticated consumer accepts without choosing a subprotocol and sends one JSON frame
describing what the middleware handed over, and what the server put in the scope.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.live.server_settings")

import django

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_jwt import JWTAuthMiddleware, JWTAuthMiddlewareStack  # noqa: E402

#: A token whose ``jti`` starts with this is revoked on ``/ws/revocable/``.
REVOKED_JTI_PREFIX = "revoked-"
#: The cookie ``/ws/cookie/`` takes its token from.
COOKIE_NAME = "jwt"


class ScopeEchoConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accept (no subprotocol chosen) and describe the authenticated scope in one frame."""

    async def connect(self) -> None:
        await self.accept()
        user = self.scope["user"]
        await self.send_json(
            {
                "user": {"pk": user.pk, "username": user.username},
                "source": self.scope["jwt"].source,
                "subprotocols": list(self.scope["subprotocols"]),
                "query_string": self.scope["query_string"].decode("latin-1"),
                "protocol_headers": [
                    value.decode("latin-1")
                    for name, value in self.scope["headers"]
                    if name == b"sec-websocket-protocol"
                ],
                # Everything the application could log, to look for tokens in.
                "scope_text": repr(
                    {key: value for key, value in self.scope.items() if key not in {"user", "jwt"}}
                ),
                # What the server itself put in the scope.
                "scheme": self.scope.get("scheme"),
                "extensions": sorted(self.scope.get("extensions") or {}),
                "client_port_type": type(self.scope["client"][1]).__name__,
            }
        )


class RefusingConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Close before accepting, as ``AllowedHostsOriginValidator`` and many consumers do."""

    async def connect(self) -> None:
        await self.close(code=4403)


async def failing_resolver(claims: Any, scope: Any) -> Any:
    """A user lookup that always fails (a database that is down)."""
    raise ConnectionError("the user database is unreachable")


async def revoked_by_prefix(claims: Any) -> bool:
    """The revocation check of ``/ws/revocable/``: revoked when the ``jti`` says so."""
    return str(claims["jti"]).startswith(REVOKED_JTI_PREFIX)


def authenticated(**settings: Any) -> Any:
    """The echo consumer behind a middleware instance with ``settings``."""
    return JWTAuthMiddleware(ScopeEchoConsumer.as_asgi(), settings=settings)


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                re_path(
                    r"^ws/deny-down/",
                    authenticated(REJECT_MODE="deny", USER_RESOLVER=failing_resolver),
                ),
                re_path(r"^ws/deny/", authenticated(REJECT_MODE="deny")),
                re_path(r"^ws/revocable/", authenticated(REVOCATION_CHECK=revoked_by_prefix)),
                re_path(
                    r"^ws/cookie/", authenticated(TOKEN_SOURCES=["cookie"], COOKIE_NAME=COOKIE_NAME)
                ),
                re_path(
                    r"^ws/message/",
                    authenticated(
                        TOKEN_SOURCES=["subprotocol", "message"],
                        MESSAGE_FORMAT="graphql-ws",
                        MESSAGE_TIMEOUT_SECONDS=1,
                    ),
                ),
                re_path(r"^ws/refuse/", RefusingConsumer.as_asgi()),
                re_path(r"^ws/echo/", JWTAuthMiddlewareStack(ScopeEchoConsumer.as_asgi())),
            ]
        )
    }
)
