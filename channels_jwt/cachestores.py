"""Where a Django cache alias keeps its entries: one name per store that evicts as one.

Two aliases can name one store: databases and key prefixes on one Redis server share its
memory limit and eviction policy, as two local-memory aliases with one ``LOCATION`` share a
dict. The checks compare stores, never alias names, to tell whether the denylist shares an
evicting store with anything that floods it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings

_REDIS_BACKENDS = ("django.core.cache.backends.redis.RedisCache", "django_redis.cache.RedisCache")
_MEMCACHED_BACKENDS = (
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
)


def shared_store(first: str, second: str) -> str | None:
    """The store that two cache aliases both write to, or ``None``."""
    common = sorted(stores(first) & stores(second))
    return common[0] if common else None


def stores(alias: str) -> set[str]:
    """Where the entries of a cache alias live, one name for each store (none: kept nowhere).

    A store is what has one memory limit and one eviction: the server of a Redis or memcached
    cache (each database number and key prefix on it included), the table of a database cache,
    the directory of a file cache, the LOCATION of a local-memory cache (two aliases with the
    same one share a dict). Any other backend: its BACKEND and LOCATION.
    """
    config = django_settings.CACHES[alias]
    backend = str(config.get("BACKEND", ""))
    location = config.get("LOCATION", "")
    if backend == "django.core.cache.backends.dummy.DummyCache":
        return set()
    if backend == "django.core.cache.backends.locmem.LocMemCache":
        return {f"the local-memory cache {str(location)!r}"}
    if backend == "django.core.cache.backends.db.DatabaseCache":
        return {f"the database table {str(location)!r}"}
    if backend == "django.core.cache.backends.filebased.FileBasedCache":
        return {f"the directory {os.path.normpath(os.path.abspath(str(location)))}"}
    if backend in _REDIS_BACKENDS:
        return {f"the Redis server {_redis_server(server)}" for server in _servers(location)}
    if backend in _MEMCACHED_BACKENDS:
        return {f"the memcached server {_memcached_server(s)}" for s in _servers(location)}
    return {f"{backend} at {location!r}"}


def _servers(location: Any) -> list[str]:
    """The servers of a LOCATION: a list, or a string of them separated by , or ;."""
    if isinstance(location, list | tuple):
        return [str(server).strip() for server in location]
    return [server.strip() for server in re.split("[;,]", str(location))]


def _host(name: str) -> str:
    """``name`` in lower case; every name of the loopback interface becomes ``localhost``."""
    name = name.lower()
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    return "localhost" if loopback else name


def _redis_server(url: str) -> str:
    """host:port (or the socket) of a Redis URL, without its database number."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix:{os.path.normpath(parts.path)}"
        if parts.scheme in ("redis", "rediss"):
            return f"{_host(parts.hostname or 'localhost')}:{parts.port or 6379}"
    except ValueError:  # a port that is not a number: compared as written
        pass
    return url


def _memcached_server(server: str) -> str:
    """host:port (or the socket) of a memcached location: host[:port], [v6]:port, a path."""
    if server.startswith(("unix:", "/")):
        return f"unix:{os.path.normpath(server.removeprefix('unix:'))}"
    host, colon, port = server.rpartition(":")
    if not colon or not port.isdigit() or (":" in host and not host.startswith("[")):
        host, port = server, "11211"  # no port (a bare IPv6 address has colons of its own)
    return f"{_host(host.strip('[]') or 'localhost')}:{port}"
