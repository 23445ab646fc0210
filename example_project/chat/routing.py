"""WebSocket routes; ``config/asgi.py`` wraps them in ``JWTAuthMiddlewareStack``."""

from __future__ import annotations

from django.urls import re_path

from chat.consumers import ChatConsumer

# Room names become channel-layer group names: keep them to safe characters and short.
websocket_urlpatterns = [
    re_path(r"^ws/chat/(?P<room>[A-Za-z0-9_-]{1,50})/$", ChatConsumer.as_asgi()),
]
