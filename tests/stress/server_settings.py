"""Django settings for the uvicorn process the load tests (``make stress``) start.

The live servers' settings (same signing key, SQLite file in ``CHANNELS_JWT_LIVE_DIR``),
plus a revocation denylist in a file-based cache in that directory, which the set-up
subprocess writes and the server reads, and logging that names every record's level, so a
warning or an error from any logger (``asyncio`` and ``channels`` included) is visible.
"""

from __future__ import annotations

from pathlib import Path

from tests.live.server_settings import *  # noqa: F403
from tests.live.server_settings import _LIVE_DIR, CHANNELS_JWT

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(Path(_LIVE_DIR or ".") / "cache"),
    }
}
CHANNELS_JWT = {**CHANNELS_JWT, "REVOCATION_CHECK": "channels_jwt.revocation.cache_denylist"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"levelled": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "levelled"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"channels_jwt": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
