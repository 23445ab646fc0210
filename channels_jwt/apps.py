"""Django app config: adding ``"channels_jwt"`` to ``INSTALLED_APPS`` registers the checks."""

from __future__ import annotations

from django.apps import AppConfig


class ChannelsJWTConfig(AppConfig):
    """Registers channels_jwt's system checks."""

    name = "channels_jwt"
    verbose_name = "Channels JWT"

    def ready(self) -> None:
        from channels_jwt.checks import register

        register()
