"""Settings of the channels-jwt example project: a small chat site.

Everything a deployment changes comes from the environment, so the same code runs the demo
(``make demo``), the end-to-end tests and a Redis-backed multi-process setup:

- ``EXAMPLE_JWT_SIGNING_KEY``: the HMAC key access tokens are signed with. Falls back to a
  demo-only constant; set a random one (``python -c "import secrets;
  print(secrets.token_urlsafe(64))"``) anywhere but on your own laptop.
- ``EXAMPLE_ACCESS_TOKEN_SECONDS``: lifetime of an access token (default 300). The tests use
  a few seconds so expiry, refresh and reconnection can be seen.
- ``EXAMPLE_DB_PATH``: the SQLite file (default ``example_project/db.sqlite3``).
- ``REDIS_URL``: when set (``redis://localhost:6379/0``), the channel layer is
  ``channels_redis``, so several server processes share rooms. Otherwise it is in-memory.
- ``EXAMPLE_SECRET_KEY``, ``EXAMPLE_DEBUG`` (``1`` to turn DEBUG on),
  ``EXAMPLE_ALLOWED_HOSTS`` (comma-separated, added to the loopback names).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Demo-only fallbacks. They are public (they are in this file), so anything signed with them
# is forgeable by anyone: fine on 127.0.0.1, never anywhere else.
DEMO_SECRET_KEY = "demo-only-django-secret-key-NOT-SECRET-set-EXAMPLE_SECRET_KEY-0123456789"
DEMO_JWT_SIGNING_KEY = "demo-only-jwt-signing-key-NOT-SECRET-set-EXAMPLE_JWT_SIGNING_KEY-0123456789"

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY") or DEMO_SECRET_KEY
DEBUG = os.environ.get("EXAMPLE_DEBUG") == "1"
ALLOWED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    *filter(None, os.environ.get("EXAMPLE_ALLOWED_HOSTS", "").split(",")),
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "channels_jwt",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH") or str(BASE_DIR / "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# The graphql-ws client the GraphQL feed page loads, installed from npm with the committed lock
# file (`npm ci` in example_project/, which `make demo` runs): served from here, never a CDN.
STATICFILES_DIRS = [("vendor/graphql-ws", BASE_DIR / "node_modules" / "graphql-ws" / "umd")]

# The page reads the CSRF cookie to send X-CSRFToken; the session cookie stays HttpOnly.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
CSRF_FAILURE_VIEW = "chat.views.csrf_failure"

# Rooms are channel-layer groups. One process: in memory. Several: Redis, from the environment.
REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Above the layer's 5 s blocking pop, and more than redis-py's 100 connections
            # (docs/open-connections.md, "Channel layers and outages").
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 10, "max_connections": 1000}],
                "capacity": 1000,
            },
        }
    }
    # The denylist and the disconnect notes of LIVE_REVOCATION, shared by every process.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

#: Lifetime of the access tokens ``/api/login`` and ``/api/refresh`` hand out (seconds).
ACCESS_TOKEN_SECONDS = int(os.environ.get("EXAMPLE_ACCESS_TOKEN_SECONDS", "300"))

CHANNELS_JWT = {
    # A key of its own, never SECRET_KEY (check W002 warns about that reuse).
    "SIGNING_KEY": os.environ.get("EXAMPLE_JWT_SIGNING_KEY") or DEMO_JWT_SIGNING_KEY,
    # Browsers use the subprotocol; ?transport=query on the page shows the query string, and
    # ?transport=message a first frame {"type": "authenticate", "token": ...} (the "json"
    # MESSAGE_FORMAT; /graphql/ reads graphql-ws' connection_init instead, see config/asgi.py);
    # native clients (clients/chat_client.py) send "Authorization: Bearer".
    "TOKEN_SOURCES": ["subprotocol", "query", "header", "message"],
    # Log out closes the user's open sockets (chat.views.logout_view: disconnect_user).
    "LIVE_REVOCATION": True,
    # Refuse any token minted for longer than this site ever issues.
    "MAX_TOKEN_LIFETIME": ACCESS_TOKEN_SECONDS,
}

# channels_jwt.I001 says query-string tokens reach access logs. The query source is enabled on
# purpose (to show it), and RedactTokens below masks tokens in every server log line.
SILENCED_SYSTEM_CHECKS = ["channels_jwt.I001"]
if not REDIS_URL:
    # One process (make demo): the in-memory layer and cache reach every socket there is.
    SILENCED_SYSTEM_CHECKS += ["channels_jwt.W005", "channels_jwt.W006"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_tokens": {"()": "channels_jwt.logs.RedactTokens"}},
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["redact_tokens"],
            "formatter": "plain",
        },
    },
    "loggers": {
        # uvicorn logs each WebSocket path with its query string: the filter masks ?token=.
        "uvicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # One line per refused handshake, with the reason (never the token).
        "channels_jwt": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "chat": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
