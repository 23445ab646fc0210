"""Opt-in limit on failed handshakes per client address (``RATE_LIMIT``).

Counts live in Django's cache (``RATE_LIMIT_CACHE``; Redis in production, so every server
process shares them) in fixed windows: the first failure from an address opens a window of
the rate's period, and once the address has used up its failures every handshake from it is
refused with 4429 ``rate_limited`` until the window ends, before the token is even read.
Only the client's own failures count (bad, expired, revoked tokens, rejected users);
an outage (4503) and the refusals of the limit itself do not. A handshake counts from its
start until it ends otherwise, so attempts still in flight count too; a cache that cannot
count refuses the handshake with 4503 (it fails closed).

The address is ``scope["client"][0]``, which behind a reverse proxy is the proxy's unless the
server is told to trust forwarded headers (uvicorn and daphne ``--proxy-headers``).
Connections without a client address (a Unix socket) are never limited.
"""

from __future__ import annotations

import contextlib
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
    """Counts failed handshakes per client address in a Django cache.

    A handshake counts from its start, as if it were going to fail, and is taken back when it
    does not (:meth:`forgive`): attempts still in flight count, so a burst of concurrent
    handshakes cannot all be verified before the first failure is recorded.
    """

    cache_alias: str
    failures: int
    period: int

    async def begin(self, address: str) -> bool:
        """Count an attempt from ``address``; whether that puts it over its failures."""
        count = await sync_to_async(self._increment, thread_sensitive=False)(address)
        return count > self.failures

    async def forgive(self, address: str) -> None:
        """Take back the count of an attempt that did not fail (or was refused by the limit)."""
        await sync_to_async(self._decrement, thread_sensitive=False)(address)

    async def counted(self, address: str) -> int:
        """How many attempts of ``address`` count in its current window."""
        return await sync_to_async(self._count, thread_sensitive=False)(address)

    def _count(self, address: str) -> int:
        value = caches[self.cache_alias].get(_key(address), 0)
        return value if isinstance(value, int) else 0

    def _increment(self, address: str) -> int:
        cache = caches[self.cache_alias]
        key = _key(address)
        # add() opens the window only if none is open, so the period runs from the first
        # attempt; incr() is atomic on Redis and memcached.
        cache.add(key, 0, timeout=self.period)
        try:
            return int(cache.incr(key))
        except ValueError:  # the window closed between add() and incr()
            cache.add(key, 1, timeout=self.period)
            return 1

    def _decrement(self, address: str) -> None:
        # ValueError: the window has closed, and there is nothing left to take back.
        with contextlib.suppress(ValueError):
            caches[self.cache_alias].decr(_key(address))
