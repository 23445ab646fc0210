"""A tiny ASGI application for the live servers (uvicorn and daphne).

``/ws/echo/...`` sits behind ``JWTAuthMiddlewareStack`` (``REJECT_MODE="close"``);
``/ws/deny/...`` behind a ``JWTAuthMiddleware`` instance with ``REJECT_MODE="deny"``. Both
routes accept any path suffix, so a test can tag its connection's path and find it in the log.
The consumer accepts without choosing a subprotocol and sends one JSON frame describing what
the middleware handed over.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.live.server_settings")

import django

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_jwt import JWTAuthMiddleware, JWTAuthMiddlewareStack  # noqa: E402


class ScopeEchoConsumer(AsyncJsonWebsocketConsumer):
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
            }
        )


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                re_path(
                    r"^ws/deny/",
                    JWTAuthMiddleware(
                        ScopeEchoConsumer.as_asgi(), settings={"REJECT_MODE": "deny"}
                    ),
                ),
                re_path(r"^ws/echo/", JWTAuthMiddlewareStack(ScopeEchoConsumer.as_asgi())),
            ]
        )
    }
)
