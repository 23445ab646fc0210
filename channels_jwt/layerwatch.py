"""One watch per channel layer and process: is the layer still delivering group messages?

A guarded connection learns of a revocation only through the channel layer, so it must not
outlive a layer that stopped delivering. Layers do not all say so: channels_redis' pub/sub
layer keeps waiting on a receive that can never complete while Redis is down, and after Redis
restarts (without persistence) its core layer has forgotten every group member and delivers
``group_send`` to nobody. So each process proves delivery end to end, for all its connections
at once: every ``WATCH_SECONDS`` the watch sends a numbered message to a group of its own and
waits up to ``PROBE_SECONDS`` for it to come back. When one does not, or the layer raises,
every connection that watches is told, and closes with 4503; the next connection starts a new
watch, so service comes back with the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from channels.layers import BaseChannelLayer, InMemoryChannelLayer

logger = logging.getLogger("channels_jwt")

#: The pause between two probes (a restart shorter than this may pass unnoticed).
WATCH_SECONDS = 0.5
#: How long the layer has to deliver a probe, or to answer at all, before it counts as lost.
PROBE_SECONDS = 5.0
#: The ``type`` of the watch's own messages.
PROBE_MESSAGE = "channels_jwt.probe"
_PREFIX = "channels_jwt.watch."

LostCallback = Callable[[], None]
T = TypeVar("T")


class LayerWatch:
    """Probes one channel layer from one event loop while any connection watches it."""

    def __init__(
        self,
        layer: BaseChannelLayer,
        loop: asyncio.AbstractEventLoop,
        rejoin_interval: float | None,
    ) -> None:
        self.layer = layer
        self.loop = loop
        self._rejoin_interval = rejoin_interval
        self._watchers: set[LostCallback] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def watching(self) -> int:
        """How many connections this watch would tell of a loss."""
        return len(self._watchers)

    def add(self, on_lost: LostCallback) -> None:
        """Call ``on_lost`` (once) if the layer is found lost while it is registered."""
        self._watchers.add(on_lost)
        if self._task is None:
            self._task = self.loop.create_task(self._run())

    def discard(self, on_lost: LostCallback) -> None:
        """Stop telling ``on_lost``; the last one out stops the probing."""
        self._watchers.discard(on_lost)
        if not self._watchers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        channel, group = "", _PREFIX + uuid.uuid4().hex
        try:
            # The default prefix, as in live.py: another is read late on the core layer.
            channel = await _retried(self.layer.new_channel)
            await _retried(partial(self.layer.group_add, group, channel))
            joined = time.monotonic()
            sequence = 0
            while True:
                await asyncio.sleep(WATCH_SECONDS)
                if self._rejoin_due(joined):
                    await _retried(partial(self.layer.group_add, group, channel))
                    joined = time.monotonic()
                sequence += 1
                await _retried(partial(self.layer.group_send, group, _probe(sequence)))
                await asyncio.wait_for(self._answer(channel, sequence), PROBE_SECONDS)
        except asyncio.CancelledError:
            if channel:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.layer.group_discard(group, channel), 1.0)
            raise
        except Exception as exc:
            self._lost(exc)

    def _rejoin_due(self, joined: float) -> bool:
        # Layers drop group members after their group_expiry; the watch's group too.
        interval = self._rejoin_interval
        return interval is not None and time.monotonic() - joined >= interval

    async def _answer(self, channel: str, sequence: int) -> None:
        while (await self.layer.receive(channel)).get("sequence") != sequence:
            pass  # an earlier probe, delivered late: not an answer to this one

    def _lost(self, exc: Exception) -> None:
        self._task = None
        watchers, self._watchers = self._watchers, set()
        timed_out = isinstance(exc, asyncio.TimeoutError)
        reason = "a probe went unanswered" if timed_out else type(exc).__name__
        logger.warning(
            "channels_jwt lost the channel layer (%s): closing %d guarded connection(s)",
            reason,
            len(watchers),
        )
        for on_lost in watchers:
            on_lost()


def _probe(sequence: int) -> dict[str, Any]:
    return {"type": PROBE_MESSAGE, "sequence": sequence}


async def _retried(operation: Callable[[], Awaitable[T]]) -> T:
    """``operation`` within ``PROBE_SECONDS``, tried twice if it raises.

    Once the layer's server is back after a restart, the first use of each pooled connection
    fails although nothing is wrong any more.
    """
    try:
        return await asyncio.wait_for(operation(), PROBE_SECONDS)
    except asyncio.TimeoutError:
        raise
    except Exception:
        return await asyncio.wait_for(operation(), PROBE_SECONDS)


_watches: weakref.WeakKeyDictionary[BaseChannelLayer, LayerWatch] = weakref.WeakKeyDictionary()


def watch_of(layer: BaseChannelLayer, rejoin_interval: float | None) -> LayerWatch | None:
    """The running loop's watch of ``layer`` (``None`` for Channels' in-memory layer).

    The in-memory layer lives in the process's memory: it cannot be lost, only outgrown.
    """
    if type(layer) is InMemoryChannelLayer:
        return None
    loop = asyncio.get_running_loop()
    watch = _watches.get(layer)
    if watch is None or watch.loop is not loop:
        watch = _watches[layer] = LayerWatch(layer, loop, rejoin_interval)
    return watch
