"""Settings of ``tests/redis/test_logout_redis.py``: the Redis suite's, with simplejwt's blacklist.

The two servers and the third process share Redis (the cache and the channels_redis layer)
with the rest of the suite, and a SQLite file of their own beside its database (``logout``
rows must not meet the other tests' users). simplejwt signs with the suite's key, so the
servers accept the access tokens it issues.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.redis.server_settings import (  # noqa: F401
    ALLOWED_HOSTS,
    CACHES,
    CHANNEL_LAYERS,
    CHANNELS_JWT,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    INSTALLED_APPS,
    LOGGING,
    REDIS_DIR_ENV,
    SECRET_KEY,
    SIGNING_KEY,
    USE_TZ,
)

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework_simplejwt.token_blacklist"]
_REDIS_DIR = os.environ.get(REDIS_DIR_ENV)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(_REDIS_DIR) / "logout.sqlite3") if _REDIS_DIR else ":memory:",
    }
}
SIMPLE_JWT = {"SIGNING_KEY": SIGNING_KEY}
