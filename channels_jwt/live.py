"""Live revocation over the channel layer (``LIVE_REVOCATION``).

Each authenticated connection gets a channel of its own and joins two groups: one for its user
and one for its token (``iss`` + ``jti``). ``disconnect_user`` and ``revoke_token`` send a
message to those groups from any process (a view, a management command, a Celery task); every
server process holding a matching socket closes it with 4441. Group names are hashes, so any
id fits the layer's naming rules and none is revealed by them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from django.core.exceptions import ImproperlyConfigured

from channels_jwt.exceptions import ChannelsJWTError
from channels_jwt.layerwatch import PROBE_SECONDS, LayerWatch, watch_of

logger = logging.getLogger("channels_jwt")

#: The ``type`` of the layer message that closes matching connections.
REVOKE_MESSAGE = "channels_jwt.revoke"
#: How many times a connection tries to join its groups before the handshake gets 4503.
JOIN_ATTEMPTS = 3
#: A receive that fails after waiting this long may have timed out idle, not lost the layer.
MIN_WAIT_SECONDS = 1.0


def _digest(*parts: str) -> str:
    joined = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()


def token_digest(claims: Mapping[str, Any]) -> str:
    """A token's identity, from its claims (``iss`` and ``jti``), never its string.

    A token can be re-encoded (padding, ECDSA malleability) and still verify, so the live
    groups and the denylist both name a token by this digest.
    """
    return _digest(str(claims.get("iss", "")), str(claims["jti"]))


def user_group(user_id: Any) -> str:
    """The group of every live connection of the user whose pk is ``user_id``."""
    return f"channels_jwt.user.{_digest(str(user_id))[:48]}"


def token_group(claims: Mapping[str, Any]) -> str:
    """The group of every live connection authenticated by the token with these claims."""
    return f"channels_jwt.token.{token_digest(claims)[:48]}"


def channel_layer() -> BaseChannelLayer:
    """The default channel layer, or ``ImproperlyConfigured`` when there is none."""
    layer = get_channel_layer()
    if layer is None:
        raise ImproperlyConfigured("LIVE_REVOCATION needs a channel layer (CHANNEL_LAYERS)")
    return layer


def rejoin_interval(layer: BaseChannelLayer) -> float | None:
    """How often a connection re-joins its groups on ``layer`` (``None``: never needed).

    A third of the layer's ``group_expiry`` (a day by default, in Channels' in-memory layer and
    channels_redis' core layer): a connection stays reachable however long it stays open.
    """
    expiry = getattr(layer, "group_expiry", None)
    if isinstance(expiry, bool) or not isinstance(expiry, int | float) or expiry <= 0:
        return None
    return expiry / 3


class LiveSubscription:
    """One connection's membership of its user and token groups, and the task that listens."""

    def __init__(
        self,
        on_revoked: Callable[[], Awaitable[None]],
        on_failure: Callable[[], Awaitable[None]],
    ) -> None:
        self._on_revoked = on_revoked
        self._on_failure = on_failure
        self._layer: BaseChannelLayer | None = None
        self._channel = ""
        self._groups: set[str] = set()
        self._listener: asyncio.Task[None] | None = None
        # A timer, not a task: it fires a few times a day, and costs far less while it waits.
        self._rejoin_timer: asyncio.TimerHandle | None = None
        self._rejoining: asyncio.Task[None] | None = None
        self._watch: LayerWatch | None = None
        self._lost = False
        self._failing: asyncio.Task[None] | None = None

    async def join(self, user_id: Any, claims: Mapping[str, Any]) -> None:
        """Join the groups (then :meth:`listen`); a layer failure is a 4503.

        A failed attempt is tried again at once, up to ``JOIN_ATTEMPTS`` in all: after the
        layer's server restarts, the first use of each pooled connection may fail although the
        server is back (redis-py 8.1 does). The handshake's deadline bounds them all.
        """
        self._layer = channel_layer()
        # Watched from before the join: a loss while joining is not missed.
        self._watch = watch_of(self._layer, rejoin_interval(self._layer))
        if self._watch is not None:
            self._watch.add(self._layer_lost)
        attempt = 1
        while True:
            try:
                await self._join_once(user_id, claims)
                return
            except Exception as exc:
                if attempt == JOIN_ATTEMPTS:
                    await self.leave()
                    failed = type(exc).__name__
                    raise ChannelsJWTError(f"channel layer unavailable ({failed})") from exc
            attempt += 1
            await self._leave_groups_in_time()  # still watched: the next try may succeed

    def listen(self) -> None:
        """Start listening: messages sent to the groups since :meth:`join` are not lost."""
        if self._lost:
            self._failing = asyncio.create_task(self._fail_lost())
            return
        self._listener = asyncio.create_task(self._listen())
        self._schedule_rejoin()

    def _layer_lost(self) -> None:
        """The process's watch found the layer lost (it logged why): fail, once listening."""
        self._lost = True
        if self._listener is not None:
            self._failing = asyncio.create_task(self._fail_lost())

    async def _fail_lost(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        await self._on_failure()

    async def _join_once(self, user_id: Any, claims: Mapping[str, Any]) -> None:
        assert self._layer is not None
        # The default prefix: on channels_redis' core layer any other one is a second queue per
        # process, read only when the consumers' receive lets go of a shared lock (seconds).
        self._channel = await self._layer.new_channel()
        await self._add(user_group(user_id))
        await self._add(token_group(claims))

    async def replace_token(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """Move from the old token's group to the new one's (after a refresh)."""
        old_group, new_group = token_group(old), token_group(new)
        if old_group != new_group:
            await self._add(new_group)
            await self._discard(old_group)

    async def leave(self) -> None:
        """Stop listening and leave every group (errors are logged, not raised)."""
        if self._watch is not None:
            self._watch.discard(self._layer_lost)
            self._watch = None
        if self._rejoin_timer is not None:
            self._rejoin_timer.cancel()
            self._rejoin_timer = None
        for task in (self._listener, self._rejoining, self._failing):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._listener = self._rejoining = self._failing = None
        await self._leave_groups_in_time()

    async def _leave_groups_in_time(self) -> None:
        try:
            await asyncio.wait_for(self._leave_groups(), PROBE_SECONDS)
        except asyncio.TimeoutError:
            self._leave_failed("TimeoutError")
            self._groups.clear()

    async def _leave_groups(self) -> None:
        for group in list(self._groups):
            try:
                await self._discard(group)
            except Exception as exc:
                self._leave_failed(type(exc).__name__)
                self._groups.discard(group)

    def _leave_failed(self, error: str) -> None:
        # Expected of a layer already found lost (and said so once, for all).
        level = logging.DEBUG if self._lost else logging.WARNING
        logger.log(level, "Leaving a channels_jwt group failed: %s", error)

    async def _add(self, group: str) -> None:
        assert self._layer is not None
        await self._layer.group_add(group, self._channel)
        self._groups.add(group)

    async def _discard(self, group: str) -> None:
        assert self._layer is not None
        await self._layer.group_discard(group, self._channel)
        self._groups.discard(group)

    async def _listen(self) -> None:
        assert self._layer is not None
        while True:
            started = time.monotonic()
            try:
                message = await self._layer.receive(self._channel)
            except Exception as exc:
                if time.monotonic() - started >= MIN_WAIT_SECONDS and await self._answers():
                    # A receive that waited, then timed out (redis-py 8 under channels_redis
                    # 4.3 does when nothing is sent), while the layer still answers.
                    continue
                logger.warning("channels_jwt lost the channel layer: %s", type(exc).__name__)
                await self._on_failure()
                return
            if message.get("type") == REVOKE_MESSAGE:
                await self._on_revoked()
                return

    def _schedule_rejoin(self) -> None:
        """Re-join in time: layers drop members after their ``group_expiry``."""
        assert self._layer is not None
        interval = rejoin_interval(self._layer)
        if interval is not None:
            loop = asyncio.get_running_loop()
            self._rejoin_timer = loop.call_later(interval, self._start_rejoin)

    def _start_rejoin(self) -> None:
        self._rejoin_timer = None
        self._rejoining = asyncio.create_task(self._rejoin_or_fail())

    async def _rejoin_or_fail(self) -> None:
        if await self._answers():
            self._schedule_rejoin()
            return
        logger.warning("channels_jwt lost the channel layer: re-joining its groups failed")
        await self._on_failure()

    async def _answers(self) -> bool:
        """Whether the layer still answers: every group re-joined within ``PROBE_SECONDS``."""
        try:
            await asyncio.wait_for(self._rejoin(), PROBE_SECONDS)
        except Exception:
            return False
        return True

    async def _rejoin(self) -> None:
        assert self._layer is not None
        for group in list(self._groups):
            await self._layer.group_add(group, self._channel)
            if group not in self._groups:  # left meanwhile (a refresh's old token): undo
                await self._layer.group_discard(group, self._channel)
