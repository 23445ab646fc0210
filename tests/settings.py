"""Django settings for the test suite."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY = "tests-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "channels_jwt",
]
#: ``CHANNELS_JWT_TEST_DATABASE=postgresql`` runs the whole suite on PostgreSQL: a throwaway
#: server that ``tests/conftest.py`` starts before the test database is created, and whose
#: port it fills in below. Unset (or ``sqlite``): SQLite in memory.
TEST_DATABASE = os.environ.get("CHANNELS_JWT_TEST_DATABASE", "") or "sqlite"
if TEST_DATABASE == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "TEST": {"NAME": ":memory:"},
        }
    }
elif TEST_DATABASE == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "channels_jwt",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "",  # set by tests/conftest.py once the throwaway server listens
        }
    }
else:
    raise ImproperlyConfigured(
        f"CHANNELS_JWT_TEST_DATABASE={TEST_DATABASE!r}: expected 'sqlite' or 'postgresql'"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# A dedicated random key, as the checks recommend (never SECRET_KEY).
CHANNELS_JWT = {"SIGNING_KEY": "k" * 16 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"}
LOGGING_CONFIG = None
# The user fixtures set passwords; PBKDF2's real cost would dominate the run.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
