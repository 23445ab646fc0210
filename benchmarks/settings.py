"""Django settings for the benchmarks: a file SQLite database and Django's defaults.

``CONN_MAX_AGE`` is left at Django's default (0): every ``database_sync_to_async`` call closes
the connection after use, which is what a project that never set it gets. ``BENCH_CONN_MAX_AGE``
(seconds) overrides it, to measure what persistent connections change. With
``CHANNELS_JWT_BENCH_POSTGRES_PORT`` set, the database is PostgreSQL on 127.0.0.1 at that port
instead (the throwaway server of the reconnect storms, :mod:`benchmarks.storm`), database
``CHANNELS_JWT_BENCH_POSTGRES_NAME``. Keys live in ``benchmarks/.state/keys.json`` (see
:mod:`benchmarks.fixtures`), shared by the benchmark process and the servers it starts.
"""

from __future__ import annotations

import os

from benchmarks.fixtures import DATABASE_ENV, STATE_DIR, load_keys

SECRET_KEY = "benchmarks-secret-key-not-for-production-0123456789abcdefghijklmnop"  # noqa: S105 - a benchmark, never deployed
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "channels_jwt",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # One file per run (the runner names it and passes it on to its servers), so two runs
        # on the same machine cannot recreate each other's users and sessions.
        "NAME": os.environ.get(DATABASE_ENV) or str(STATE_DIR / "bench.sqlite3"),
        "CONN_MAX_AGE": int(os.environ.get("BENCH_CONN_MAX_AGE", "0")),
    }
}
POSTGRES_PORT_ENV = "CHANNELS_JWT_BENCH_POSTGRES_PORT"
POSTGRES_NAME_ENV = "CHANNELS_JWT_BENCH_POSTGRES_NAME"
if os.environ.get(POSTGRES_PORT_ENV):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get(POSTGRES_NAME_ENV) or "channels_jwt_bench",
            "USER": "postgres",  # the throwaway server's superuser, trust authentication
            "HOST": "127.0.0.1",
            "PORT": os.environ[POSTGRES_PORT_ENV],
            "CONN_MAX_AGE": int(os.environ.get("BENCH_CONN_MAX_AGE", "0")),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CHANNELS_JWT = {"SIGNING_KEY": load_keys()["hs256"]}
