"""ASGI entry point: ``uvicorn config.asgi:application`` (from ``example_project/``).

HTTP goes to Django (static files served by Django itself, for the demo; put a web server or
WhiteNoise in front in production). WebSockets go through ``JWTAuthMiddlewareStack``: every
connection to ``ws/chat/<room>/`` is authenticated with a JWT before the consumer runs.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from channels_jwt import JWTAuthMiddlewareStack  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": JWTAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
