"""Opt-in limit on failed handshakes per client address (``RATE_LIMIT``).

Counts live in Django's cache (``RATE_LIMIT_CACHE``; Redis in production, so every server
process shares them) in fixed windows: the first failure from an address opens a window of
the rate's period, and once the address has used up its failures every handshake from it is
refused with 4429 ``rate_limited`` until the window ends, before the token is even read.
Only the client's own failures count (bad, expired, revoked tokens, rejected users);
an outage (4503) and the refusals of the limit itself do not.

The address is ``scope["client"][0]``, which behind a reverse proxy is the proxy's unless the
server is told to trust forwarded headers (uvicorn and daphne ``--proxy-headers``).
Connections without a client address (a Unix socket) are never limited.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import caches

KEY_PREFIX = "channels_jwt:failures:"

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"\A([1-9][0-9]{0,8})/(s|sec|second|m|min|minute|h|hour|d|day)\Z")


def parse_rate(value: Any) -> tuple[int, int] | None:
    """``"20/min"`` → ``(20, 60)``: failures allowed and the window in seconds.

    Returns ``None`` for anything else (the system check reports it).
    """
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    return int(match[1]), _PERIODS[match[2][0]]


def _key(address: str) -> str:
    # Hashed: the cache key is then safe for every backend whatever the address looks like.
    return KEY_PREFIX + hashlib.sha256(address.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FailureLimiter:
    """Counts failed handshakes per client address in a Django cache."""

    cache_alias: str
    failures: int
    period: int

    async def is_limited(self, address: str) -> bool:
        """Whether ``address`` has used up its failures in the current window."""
        count = await sync_to_async(self._count, thread_sensitive=False)(address)
        return count >= self.failures

    async def record_failure(self, address: str) -> None:
        """Count one failed handshake from ``address``."""
        await sync_to_async(self._increment, thread_sensitive=False)(address)

    def _count(self, address: str) -> int:
        value = caches[self.cache_alias].get(_key(address), 0)
        return value if isinstance(value, int) else 0

    def _increment(self, address: str) -> None:
        cache = caches[self.cache_alias]
        key = _key(address)
        # add() opens the window only if none is open, so the period runs from the first
        # failure; incr() is atomic on Redis and memcached.
        cache.add(key, 0, timeout=self.period)
        try:
            cache.incr(key)
        except ValueError:  # the window closed between add() and incr()
            cache.add(key, 1, timeout=self.period)
