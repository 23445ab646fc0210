"""Django settings for the uvicorn servers (and database set-up) of ``test_postgres_live.py``.

The database comes from the environment the tests give the subprocesses: the throwaway
server's port, the database name, and the connection mode under test (``CONN_MAX_AGE``,
``CONN_HEALTH_CHECKS``). The tests import :data:`SIGNING_KEY` from here to mint tokens, which
is why missing variables do not fail the import (the subprocesses always get them).
"""

from __future__ import annotations

import os

# The settings every test server shares; this suite adds its own below.
from tests.server_settings import (  # noqa: F401
    ALLOWED_HOSTS,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    INSTALLED_APPS,
    LOGGING,
    USE_TZ,
)

PORT_ENV = "CHANNELS_JWT_PG_PORT"
NAME_ENV = "CHANNELS_JWT_PG_NAME"
CONN_MAX_AGE_ENV = "CHANNELS_JWT_PG_CONN_MAX_AGE"
HEALTH_CHECKS_ENV = "CHANNELS_JWT_PG_HEALTH_CHECKS"

#: Deliberately different from the other test settings: tokens must be minted for this server.
SIGNING_KEY = "postgres-live-signing-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

SECRET_KEY = "postgres-live-secret-key-not-for-production-0123456789abcdefghijklmno"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get(NAME_ENV, "channels_jwt_live"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get(PORT_ENV, ""),
        "CONN_MAX_AGE": int(os.environ.get(CONN_MAX_AGE_ENV, "0")),
        "CONN_HEALTH_CHECKS": os.environ.get(HEALTH_CHECKS_ENV) == "1",
    }
}
CHANNELS_JWT = {"SIGNING_KEY": SIGNING_KEY}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
