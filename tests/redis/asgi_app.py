"""The application the two servers of ``tests/redis`` run.

``/ws/echo/`` sits behind ``JWTAuthMiddlewareStack`` with ``tests.redis.server_settings``
(live revocation over channels_redis, the cache denylist in Redis). The consumer accepts,
says who it serves (``{"user": pk, "jti": jti}``) and echoes every JSON frame as
``{"echo": ...}``, so a test can tell an open socket from a closed one.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.redis.server_settings")

import django

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_jwt import JWTAuthMiddlewareStack  # noqa: E402


class EchoConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accept, introduce the connection, echo every frame."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json(
            {"user": self.scope["user"].pk, "jti": self.scope["jwt"].claims["jti"]}
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [re_path(r"^ws/echo/", JWTAuthMiddlewareStack(EchoConsumer.as_asgi()))]
        )
    }
)
