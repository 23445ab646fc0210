"""What the Django settings of every test server share (live, Redis and PostgreSQL suites).

Each suite's ``server_settings`` imports these names and adds its own keys, database and
the rest. ``channels_jwt``'s rejection and close lines go to stderr, which the fixtures capture
to a file, so the tests can read them (and check that no token and no traceback is in them);
the servers' own loggers stay as they are.
"""

from __future__ import annotations

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "channels_jwt",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"channels_jwt": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
