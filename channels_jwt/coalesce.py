"""Lookups that arrive while one is in flight go together in the next one.

A reconnect storm sends hundreds of handshakes at once, and each would take its own hop through
Channels' single database thread. A :class:`Coalescer` runs the first lookup at once (nothing
waits for company), and collects the keys asked for meanwhile into the next batch: one hop, one
``load`` call for all of them. Each caller awaits its own key's result under its own deadline;
a caller that gives up (its handshake's ``AUTH_TIMEOUT_SECONDS``) leaves the batch running for
the others.
"""

from __future__ import annotations

import asyncio
import copy
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Loads a batch of keys; the result has an entry for each key found (missing: not found).
BatchLoad = Callable[[list[K]], Awaitable[Mapping[K, V]]]


class Coalescer(Generic[K, V]):
    """Batches concurrent :meth:`get` calls on one event loop into sequential ``load`` calls.

    A caller that finds nothing in flight loads its key itself, at once and at no extra cost.
    Callers that arrive meanwhile wait for the next batch, which a task runs when the current
    one ends, and so on while keys keep arriving.
    """

    def __init__(self, load: BatchLoad[K, V]) -> None:
        self._load = load
        self._next: dict[K, asyncio.Future[V | None]] = {}
        self._busy = False
        self._drain: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """The value loaded for ``key`` (``None`` if ``load`` found none), or its exception.

        Callers asking for the same key in one batch get copies (``copy.copy``): a user object
        one connection changes is never another connection's.
        """
        if self._busy:
            return await self._wait_for_next(key)
        self._busy = True
        try:
            found = await self._load([key])
        finally:  # even if this caller gave up: the ones that arrived meanwhile are served
            self._batch_done()
        return found.get(key)

    async def _wait_for_next(self, key: K) -> V | None:
        future = self._next.get(key)
        shared = future is not None
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_observe)
            self._next[key] = future
        # Shielded: one caller's cancellation (its deadline) must not cancel the others' result.
        value = await asyncio.shield(future)
        return copy.copy(value) if shared else value

    def _batch_done(self) -> None:
        if self._next:
            self._drain = asyncio.get_running_loop().create_task(self._run())
        else:
            self._busy = False

    async def _run(self) -> None:
        batch, self._next = self._next, {}
        try:
            found = await self._load(list(batch))
        except asyncio.CancelledError:  # the loop is closing: nobody gets an answer
            for future in [*batch.values(), *self._next.values()]:
                future.cancel()
            self._next.clear()
            raise
        except Exception as exc:  # every caller of the batch gets it, as if alone
            for future in batch.values():
                future.set_exception(exc)
        else:
            for key, future in batch.items():
                future.set_result(found.get(key))
        finally:
            self._drain = None
            self._batch_done()


def _observe(future: asyncio.Future[Any]) -> None:
    """Mark an exception as retrieved: a batch whose callers all gave up logs nothing."""
    if not future.cancelled():
        future.exception()


class LoopCoalescers(Generic[K, V]):
    """One :class:`Coalescer` per event loop (a future belongs to the loop that made it)."""

    def __init__(self, load: BatchLoad[K, V]) -> None:
        self._load = load
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Coalescer[K, V]] = (
            weakref.WeakKeyDictionary()
        )

    async def get(self, key: K) -> V | None:
        """:meth:`Coalescer.get` on the running loop's coalescer."""
        loop = asyncio.get_running_loop()
        coalescer = self._by_loop.get(loop)
        if coalescer is None:
            coalescer = self._by_loop[loop] = Coalescer(self._load)
        return await coalescer.get(key)
