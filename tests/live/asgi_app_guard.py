"""The live servers' application for the open-connection tests (expiry and in-band refresh).

``/ws/guard/...`` sits behind ``JWTAuthMiddlewareStack`` with the settings of
``tests.live.server_settings`` (``CLOSE_ON_EXPIRY`` on by default). Its consumer uses
``TokenRefreshMixin``: on connect it sends ``{"exp": <the token's exp>}``, it answers
``token.refresh`` frames, and echoes every other JSON frame as ``{"echo": ...}``.
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

from channels_jwt import JWTAuthMiddlewareStack  # noqa: E402
from channels_jwt.consumers import TokenRefreshMixin  # noqa: E402


class RefreshingEchoConsumer(TokenRefreshMixin, AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accept, announce the token's ``exp``, refresh in-band, echo everything else."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"exp": self.scope["jwt"].claims["exp"]})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [re_path(r"^ws/guard/", JWTAuthMiddlewareStack(RefreshingEchoConsumer.as_asgi()))]
        )
    }
)
