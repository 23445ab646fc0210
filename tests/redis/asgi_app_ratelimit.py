"""The application the rate-limit servers of ``tests/redis`` run (``test_ratelimit_redis.py``).

``/ws/limited/`` allows :data:`RATE_COUNT` failed handshakes a minute per client address and
``/ws/limited-many/`` :data:`MANY_COUNT`; both count in Django's cache, which
``tests.redis.server_settings`` puts in the shared Redis, so every process sees every
failure. The consumer accepts and says whose connection it is.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.redis.server_settings")

import django

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_jwt import JWTAuthMiddleware  # noqa: E402

RATE_COUNT = 3
MANY_COUNT = 20


class GreetingConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accept and say who the connection belongs to."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"user": self.scope["user"].pk})


def limited(count: int) -> JWTAuthMiddleware:
    return JWTAuthMiddleware(GreetingConsumer.as_asgi(), settings={"RATE_LIMIT": f"{count}/min"})


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                re_path(r"^ws/limited-many/", limited(MANY_COUNT)),
                re_path(r"^ws/limited/", limited(RATE_COUNT)),
            ]
        )
    }
)
