"""Django settings shared by the processes of ``tests/redis``: two servers and a third one.

Everything that must be shared lives outside the processes: the SQLite file in the directory
named by ``CHANNELS_JWT_REDIS_DIR``, and Redis (``CHANNELS_JWT_REDIS_URL``) holding both
Django's cache (the ``cache_denylist`` revocations) and the channels_redis layer (the live
revocation groups). The tests import :data:`SIGNING_KEY` from here to mint tokens, which is
why missing variables do not fail the import (the processes always get them).
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

REDIS_DIR_ENV = "CHANNELS_JWT_REDIS_DIR"
REDIS_URL_ENV = "CHANNELS_JWT_REDIS_URL"
#: ``core`` (the default) or ``pubsub``: which channels_redis layer the processes use.
REDIS_LAYER_ENV = "CHANNELS_JWT_REDIS_LAYER"
LAYER_BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
_REDIS_DIR = os.environ.get(REDIS_DIR_ENV)
_REDIS_URL = os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0")

#: Deliberately different from the other suites' keys: tokens must be minted for these servers.
SIGNING_KEY = "redis-suite-signing-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

SECRET_KEY = "redis-suite-secret-key-not-for-production-0123456789abcdefghijklmn"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(_REDIS_DIR) / "db.sqlite3") if _REDIS_DIR else ":memory:",
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": LAYER_BACKENDS[os.environ.get(REDIS_LAYER_ENV, "core")],
        # What docs/open-connections.md advises for channels_redis 4.3 under redis-py 8: a
        # socket timeout above the core layer's 5 s blocking pop (or every idle consumer's
        # receive raises), a pool larger than redis-py's default cap of 100, and room for a
        # burst of revocations (the core layer drops what exceeds a process's capacity).
        "CONFIG": {
            "hosts": [{"address": _REDIS_URL, "socket_timeout": 10, "max_connections": 10_000}],
            "capacity": 1000,
        },
    }
}
CHANNELS_JWT = {
    "SIGNING_KEY": SIGNING_KEY,
    "LIVE_REVOCATION": True,
    "REVOCATION_CHECK": "channels_jwt.revocation.cache_denylist",
}
