"""The system checks: they report the problems :func:`channels_jwt.config.parse` found.

Registered when ``"channels_jwt"`` is in ``INSTALLED_APPS``; ``manage.py check`` then shows
every problem of the project-wide ``CHANNELS_JWT`` with its id and hint. The rules themselves
live in :mod:`channels_jwt.config`, where the runtime applies them too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core import checks

from channels_jwt.conf import settings as project_settings
from channels_jwt.config import Message, check_settings, serious

__all__ = ["check_project_settings", "check_settings", "register", "serious"]


def check_project_settings(app_configs: Any = None, **kwargs: Any) -> list[Message]:
    """The registered system check: validates the project-wide ``CHANNELS_JWT``."""
    return check_settings(project_settings)


def register() -> Callable[..., list[Message]]:
    """Register :func:`check_project_settings` with Django's check framework."""
    return checks.register(checks.Tags.security)(check_project_settings)
