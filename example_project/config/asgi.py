"""ASGI entry point: ``uvicorn config.asgi:application`` (from ``example_project/``).

HTTP goes to Django (static files served by Django itself, for the demo; put a web server or
WhiteNoise in front in production), except ``/graphql/``: Strawberry's HTTP consumer, behind
``JWTAuthMiddlewareStack`` with ``AUTHENTICATE_HTTP``, so a request with ``Authorization:
Bearer <token>`` runs as its user (none: anonymous; a bad one: a JSON 401 or 403).

WebSockets go through ``JWTAuthMiddlewareStack`` too: ``ws/chat/<room>/`` (the chat page's
sockets) and ``graphql/`` (graphql-ws subscriptions, the token in ``connection_init``). No
consumer runs for a connection the middleware refused.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()  # sets Django up before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from channels_jwt import JWTAuthMiddlewareStack  # noqa: E402
from chat.graphql import http_consumer, websocket_consumer  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

# graphql-ws puts the token in connection_init's payload; the chat page sends its own JSON
# frame (settings.CHANNELS_JWT["MESSAGE_FORMAT"]). Everything else is the project's settings.
GRAPHQL_WS = {"MESSAGE_FORMAT": "graphql-ws"}

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                re_path(
                    r"^graphql/$",
                    JWTAuthMiddlewareStack(http_consumer, settings={"AUTHENTICATE_HTTP": True}),
                ),
                re_path(r"", ASGIStaticFilesHandler(django_asgi_app)),
            ]
        ),
        "websocket": URLRouter(
            [
                re_path(
                    r"^graphql/$", JWTAuthMiddlewareStack(websocket_consumer, settings=GRAPHQL_WS)
                ),
                re_path(r"", JWTAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
            ]
        ),
    }
)
