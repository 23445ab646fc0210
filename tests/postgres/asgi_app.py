"""The application uvicorn serves in ``test_postgres_live.py``.

``/ws/pg/...`` (any suffix, so a test can tag its connection and find it in the log) sits
behind ``JWTAuthMiddlewareStack`` with the default ``database_user``. The consumer accepts and
sends one JSON frame: the user it was handed, and the PostgreSQL backend that served its own
query, run in Channels' database thread like the lookup (so a persistent connection shows as
the same backend from one handshake to the next).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.postgres.server_settings")

import django

django.setup()

from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.db import connection  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_jwt import JWTAuthMiddlewareStack  # noqa: E402


def backend_pid() -> int:
    """The process id of the PostgreSQL backend this thread's connection talks to."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid: int = cursor.fetchone()[0]
    return pid


class UserConsumer(AsyncJsonWebsocketConsumer):
    """Accept, then describe the user and the database backend in one frame."""

    async def connect(self) -> None:
        await self.accept()
        user = self.scope["user"]
        await self.send_json(
            {
                "user": {"pk": user.pk, "username": user.username, "active": user.is_active},
                "backend_pid": await database_sync_to_async(backend_pid)(),
            }
        )


application = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"^ws/pg/", JWTAuthMiddlewareStack(UserConsumer.as_asgi()))])}
)
