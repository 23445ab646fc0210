"""Django signals sent by the middleware, and how they are sent.

``authenticated`` is sent after a successful handshake with ``scope``, ``user``, ``claims``
and ``source``. ``authentication_failed`` is sent for every rejection with ``scope`` (the
credential already removed), ``reason``, ``close_code``, ``source`` (or ``None``) and
``error`` (the exception). The token itself is never sent. The sender is the middleware
class. Receivers run with ``send_robust`` semantics: an exception in a receiver is logged and
does not change the outcome of the handshake.

Receivers may use the ORM, so they run in a thread, but never in Channels' database thread:
that one thread serves every handshake's user lookup, and a flood of failed handshakes must
not queue ahead of them. Each signal has a thread of its own, with Django's connection
housekeeping around each call as Channels does for its own. A rejection is sent before its
``authentication_failed`` receivers run, so they never delay a close either; while more than
``MAX_PENDING`` (1,000) sends of one signal wait for their thread, further ones are dropped (and
counted in a warning) rather than held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.dispatch import Signal

authenticated = Signal()
authentication_failed = Signal()

#: Sends of one signal that may wait for its thread; beyond that they are dropped.
MAX_PENDING = 1000

logger = logging.getLogger("channels_jwt")


class SignalSender:
    """Sends one signal from the event loop on a thread of its own (see the module docs)."""

    def __init__(self, signal: Signal, name: str) -> None:
        self.signal = signal
        self.name = name
        self.pending = 0
        self.dropped = 0
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"channels_jwt-{name}"
        )

    async def send(self, sender: Any, **kwargs: Any) -> None:
        """Send to the receivers, if any; log the ones that raise."""
        # ``receivers`` first: an empty list is the common case, and has_listeners() locks.
        if not self.signal.receivers or not self.signal.has_listeners(sender):
            return
        if self.pending >= MAX_PENDING:
            self._drop()
            return
        self.pending += 1
        try:
            run = sync_to_async(self._send_robust, thread_sensitive=False, executor=self._executor)
            responses = await run(sender, kwargs)
        finally:
            self.pending -= 1
        for receiver, response in responses:
            if isinstance(response, Exception):
                logger.error(
                    "Receiver %r of a channels_jwt signal raised %s",
                    receiver,
                    type(response).__name__,
                )

    def _send_robust(
        self, sender: Any, kwargs: dict[str, Any]
    ) -> list[tuple[Callable[..., Any], Any]]:
        close_old_connections()
        try:
            return self.signal.send_robust(sender, **kwargs)
        finally:
            close_old_connections()

    def _drop(self) -> None:
        self.dropped += 1
        # 1, 10, 100, ...: a flood is reported, without flooding the log in turn.
        if str(self.dropped).rstrip("0") == "1":
            logger.warning(
                "channels_jwt %s receivers cannot keep up: %d signals dropped so far",
                self.name,
                self.dropped,
            )


send_authenticated = SignalSender(authenticated, "authenticated")
send_authentication_failed = SignalSender(authentication_failed, "authentication_failed")
