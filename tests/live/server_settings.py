"""Django settings for the live ASGI servers that ``tests/live`` starts in subprocesses.

The SQLite file lives in the directory named by ``CHANNELS_JWT_LIVE_DIR``: the test session
creates it, migrates it and adds the users before any server starts, so the servers and the
tests see the same rows. The tests import :data:`SIGNING_KEY` from here to mint tokens, which
is why a missing variable does not fail the import (the servers always get it).
"""

from __future__ import annotations

import os
from pathlib import Path

# The settings every test server shares; this suite adds its own below.
from tests.server_settings import (  # noqa: F401
    ALLOWED_HOSTS,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    INSTALLED_APPS,
    LOGGING,
    USE_TZ,
)

LIVE_DIR_ENV = "CHANNELS_JWT_LIVE_DIR"
_LIVE_DIR = os.environ.get(LIVE_DIR_ENV)

#: Deliberately different from ``tests.settings``: tokens must be minted for the server.
SIGNING_KEY = "live-server-signing-key-0123456789abcdefghijklmnopqrstuvwxyzABCD"

SECRET_KEY = "live-server-secret-key-not-for-production-0123456789abcdefghijklmnop"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(_LIVE_DIR) / "db.sqlite3") if _LIVE_DIR else ":memory:",
    }
}
CHANNELS_JWT = {"SIGNING_KEY": SIGNING_KEY}
