"""The chat app: login API, chat consumer, the one-page client."""

from __future__ import annotations

from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Rooms, messages and the demo users."""

    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"
