"""The live servers' application for the fault and rate-limit tests (``test_faults_live.py``).

Routes (each accepts any path suffix, so a test can tag its connection and find it in the log):

- ``/ws/echo/``: ``JWTAuthMiddlewareStack`` with the live settings (``database_user`` on the
  SQLite file), the route a database outage hits;
- ``/ws/hang/``: a resolver that never returns, bounded by ``AUTH_TIMEOUT_SECONDS`` of
  :data:`HANG_TIMEOUT`;
- ``/ws/limited/`` and ``/ws/limited-deny/``: ``RATE_LIMIT`` of :data:`RATE_COUNT` failures a
  minute per client address (Django's default local-memory cache: counts per process), in
  close and deny mode.

Every consumer accepts and sends one JSON frame naming its user, so a test can tell an
authenticated connection from one that was closed.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.live.server_settings")

import django

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_jwt import JWTAuthMiddleware, JWTAuthMiddlewareStack  # noqa: E402
from channels_jwt.users import token_user  # noqa: E402

#: The ``AUTH_TIMEOUT_SECONDS`` of ``/ws/hang/``.
HANG_TIMEOUT = 0.5
#: Failed handshakes a client address may make per minute on the rate-limited routes.
RATE_COUNT = 3


class GreetingConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Accept and say who the connection belongs to."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"user": self.scope["user"].pk})


async def hanging_resolver(claims: Any, scope: Any) -> Any:
    """A user lookup that never returns (a database that stopped answering)."""
    await asyncio.Event().wait()


LIMITED = {"RATE_LIMIT": f"{RATE_COUNT}/min", "USER_RESOLVER": token_user}

application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                re_path(r"^ws/echo/", JWTAuthMiddlewareStack(GreetingConsumer.as_asgi())),
                re_path(
                    r"^ws/hang/",
                    JWTAuthMiddleware(
                        GreetingConsumer.as_asgi(),
                        settings={
                            "USER_RESOLVER": hanging_resolver,
                            "AUTH_TIMEOUT_SECONDS": HANG_TIMEOUT,
                        },
                    ),
                ),
                re_path(
                    r"^ws/limited-deny/",
                    JWTAuthMiddleware(
                        GreetingConsumer.as_asgi(), settings={**LIMITED, "REJECT_MODE": "deny"}
                    ),
                ),
                re_path(
                    r"^ws/limited/", JWTAuthMiddleware(GreetingConsumer.as_asgi(), settings=LIMITED)
                ),
            ]
        )
    }
)
