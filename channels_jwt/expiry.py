"""One loop timer for every connection's token expiry.

Tokens expire on whole seconds, so thousands of open connections share a few dozen distinct
deadlines. An :class:`ExpiryClock` keeps, per event loop, the connections due at each deadline
and a single ``loop.call_at`` timer for the earliest one: a connection costs one dictionary
entry instead of a timer handle, its callback and a copy of the context. The clock compares
deadlines with ``time.time()`` when its timer fires, so a timer that fires early (the loop's
clock and the wall clock drift apart) re-arms instead of firing anybody early.
"""

from __future__ import annotations

import asyncio
import heapq
import time
import weakref
from typing import Protocol


class Expiring(Protocol):
    """What the clock calls when a deadline has passed."""

    def expired(self) -> None:
        """The deadline this object was added with has passed (called once, from the loop)."""


class Due:
    """The objects due at one deadline (a dict as an ordered set)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[Expiring, None] = {}


class ExpiryClock:
    """The deadlines of one event loop: a heap of distinct deadlines, one timer for the first.

    A deadline stays until it passes, whoever is left at it: connections that come and go at
    one deadline cost a dictionary entry each, not a timer. The clock holds neither its loop
    nor its timer (the loop holds the timer, the timer the clock), so a closed loop and its
    clock are freed; a timer superseded by an earlier deadline finds itself stale and returns.
    """

    __slots__ = ("__weakref__", "_armed", "_armed_for", "_deadlines", "_due")

    def __init__(self) -> None:
        self._due: dict[float, Due] = {}
        self._deadlines: list[float] = []  # a heap of the keys of _due
        self._armed = 0  # the current timer's number: older timers are stale
        self._armed_for: float | None = None

    def add(self, deadline: float, item: Expiring) -> Due:
        """Call ``item.expired()`` once ``time.time()`` reaches ``deadline``.

        Returns what :func:`cancel` takes to take it back. Call from the clock's loop.
        """
        due = self._due.get(deadline)
        if due is None:
            due = self._due[deadline] = Due()
            heapq.heappush(self._deadlines, deadline)
            if self._armed_for is None or deadline < self._armed_for:
                self._arm()
        due.items[item] = None
        return due

    def _arm(self) -> None:
        self._armed += 1
        self._armed_for = None
        if not self._deadlines:
            return
        first = self._deadlines[0]
        loop = asyncio.get_running_loop()
        delay = max(0.0, first - time.time())
        loop.call_at(loop.time() + delay, self._fire, self._armed)
        self._armed_for = first

    def _fire(self, armed: int) -> None:
        if armed != self._armed:
            return  # superseded by an earlier deadline
        now = time.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0] <= now:
            for item in list(self._due.pop(heapq.heappop(deadlines)).items):
                try:
                    item.expired()
                except Exception as exc:  # one failure must not strand the others
                    asyncio.get_running_loop().call_exception_handler(
                        {"message": "expiry callback failed", "exception": exc}
                    )
        self._arm()

    def __len__(self) -> int:
        """How many objects wait (for tests and probes)."""
        return sum(len(due.items) for due in self._due.values())


def cancel(due: Due, item: Expiring) -> None:
    """Take back ``item`` from the deadline :meth:`ExpiryClock.add` returned ``due`` for."""
    due.items.pop(item, None)


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ExpiryClock] = (
    weakref.WeakKeyDictionary()
)


def expiry_clock() -> ExpiryClock:
    """The running loop's clock (made on first use, gone with the loop)."""
    loop = asyncio.get_running_loop()
    clock = _CLOCKS.get(loop)
    if clock is None:
        clock = _CLOCKS[loop] = ExpiryClock()
    return clock
