"""Django app config: adding ``"channels_jwt"`` to ``INSTALLED_APPS`` registers the checks.

With simplejwt's blacklist app installed too, it also connects the logout bridge
(:mod:`channels_jwt.logout`): a user's last logout closes their live sockets.
"""

from __future__ import annotations

from django.apps import AppConfig, apps


class ChannelsJWTConfig(AppConfig):
    """Registers channels_jwt's system checks, and the logout bridge when it applies."""

    name = "channels_jwt"
    verbose_name = "Channels JWT"

    def ready(self) -> None:
        from channels_jwt.checks import register

        register()
        if apps.is_installed("rest_framework_simplejwt.token_blacklist"):
            from channels_jwt import logout

            logout.connect(apps)
