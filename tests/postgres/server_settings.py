"""Django settings for the uvicorn servers (and database set-up) of ``test_postgres_live.py``.

The database comes from the environment the tests give the subprocesses: the throwaway
server's port, the database name, and the connection mode under test (``CONN_MAX_AGE``,
``CONN_HEALTH_CHECKS``). The tests import :data:`SIGNING_KEY` from here to mint tokens, which
is why missing variables do not fail the import (the subprocesses always get them).
"""

from __future__ import annotations

import os

PORT_ENV = "CHANNELS_JWT_PG_PORT"
NAME_ENV = "CHANNELS_JWT_PG_NAME"
CONN_MAX_AGE_ENV = "CHANNELS_JWT_PG_CONN_MAX_AGE"
HEALTH_CHECKS_ENV = "CHANNELS_JWT_PG_HEALTH_CHECKS"

#: Deliberately different from the other test settings: tokens must be minted for this server.
SIGNING_KEY = "postgres-live-signing-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

SECRET_KEY = "postgres-live-secret-key-not-for-production-0123456789abcdefghijklmno"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "channels_jwt",
]
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CHANNELS_JWT = {"SIGNING_KEY": SIGNING_KEY}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# channels_jwt's rejection lines go to stderr, which the fixtures capture to a file, so the
# tests can read them (and check that no token and no traceback is in them).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"channels_jwt": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
