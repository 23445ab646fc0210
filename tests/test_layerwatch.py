"""The per-process watch of the channel layer (``channels_jwt.layerwatch``).

Layers here are Channels' in-memory layer with one fault each (what a Redis restart does to
channels_redis, which ``tests/redis/test_idle_layer.py`` shows for real): messages that go
to nobody, a layer that raises, group members that expire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer

from channels_jwt import JWTAuthMiddleware
from channels_jwt import layerwatch as layerwatch_module
from channels_jwt.layerwatch import PROBE_MESSAGE, LayerWatch, watch_of
from channels_jwt.live import LiveSubscription
from tests.harness import (
    CLOSE_UNAVAILABLE,
    LOGGER,
    TIMEOUT,
    Configure,
    RecordingApp,
    Sockets,
    token_for,
)

#: Probes every few milliseconds, given up after a tenth of a second.
FAST = {"WATCH_SECONDS": 0.01, "PROBE_SECONDS": 0.1}


class DeafLayer(InMemoryChannelLayer):
    """Accepts every group message and delivers none (members forgotten by a restart)."""

    deaf = False

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not self.deaf:
            await super().group_send(group, message)


class RaisingLayer(InMemoryChannelLayer):
    """Raises on every group message once ``down`` (the server cannot be reached)."""

    down = False

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError("layer is down")
        await super().group_send(group, message)


@pytest.fixture
def fast_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST.items():
        monkeypatch.setattr(layerwatch_module, name, value)


class Lost:
    """A watcher that counts how often it was told."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def probes_until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Let the watch run until ``condition`` holds (at most ``seconds``)."""

    async def holds() -> None:
        while not condition():  # noqa: ASYNC110 (the condition is another object's state)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(holds(), seconds)


async def test_a_layer_that_delivers_keeps_its_watchers(fast_watch: None) -> None:
    layer = InMemoryChannelLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    lost = Lost()
    watch.add(lost)

    await asyncio.sleep(0.3)  # about thirty probes

    assert lost.calls == 0
    watch.discard(lost)


async def test_probes_that_go_to_nobody_tell_every_watcher_once(
    fast_watch: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    layer = DeafLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    first, second = Lost(), Lost()
    watch.add(first)
    watch.add(second)
    await asyncio.sleep(0.05)

    layer.deaf = True
    await probes_until(lambda: first.calls == 1)
    await asyncio.sleep(0.2)

    assert (first.calls, second.calls) == (1, 1)
    assert watch.watching == 0
    assert caplog.messages == [
        "channels_jwt lost the channel layer (a probe went unanswered): "
        "closing 2 guarded connection(s)"
    ]


async def test_a_layer_that_raises_is_lost_and_named(
    fast_watch: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    layer = RaisingLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    lost = Lost()
    watch.add(lost)

    layer.down = True
    await probes_until(lambda: lost.calls == 1)

    assert caplog.messages == [
        "channels_jwt lost the channel layer (ConnectionError): closing 1 guarded connection(s)"
    ]


class HangingLayer(InMemoryChannelLayer):
    """Group messages never return once ``hung`` (a server that stopped answering)."""

    hung = False

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if self.hung:
            await asyncio.Event().wait()
        await super().group_send(group, message)


async def test_a_layer_that_stops_answering_is_lost(fast_watch: None) -> None:
    layer = HangingLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    lost = Lost()
    watch.add(lost)
    await asyncio.sleep(0.05)

    layer.hung = True

    await probes_until(lambda: lost.calls == 1)


class SlowChannelLayer(InMemoryChannelLayer):
    """A new channel takes a moment (a layer slow to answer)."""

    async def new_channel(self, prefix: str = "specific.") -> str:
        await asyncio.sleep(0.2)
        return await super().new_channel(prefix)


async def test_a_watch_stopped_before_it_has_a_channel_leaves_nothing(fast_watch: None) -> None:
    layer = SlowChannelLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    lost = Lost()
    watch.add(lost)
    await asyncio.sleep(0.05)

    watch.discard(lost)  # while the watch waits for its channel
    await asyncio.sleep(0.3)

    assert not layer.groups
    assert lost.calls == 0


async def test_the_next_watcher_after_a_loss_starts_a_new_watch(fast_watch: None) -> None:
    layer = RaisingLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    before, after = Lost(), Lost()
    watch.add(before)
    layer.down = True
    await probes_until(lambda: before.calls == 1)

    layer.down = False
    watch.add(after)
    await asyncio.sleep(0.2)

    assert after.calls == 0
    watch.discard(after)


async def test_the_last_watcher_out_stops_the_probes_and_leaves_the_group(
    fast_watch: None,
) -> None:
    layer = InMemoryChannelLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    lost = Lost()
    watch.add(lost)
    await asyncio.sleep(0.05)
    assert layer.groups

    watch.discard(lost)
    await asyncio.sleep(0.05)

    assert not layer.groups
    watch.discard(lost)  # twice is harmless


async def test_the_watch_rejoins_its_group_before_the_layer_drops_it(
    fast_watch: None,
) -> None:
    # In-memory group_expiry is in seconds; one second, re-joined every third of it.
    layer = InMemoryChannelLayer(group_expiry=1)
    watch = LayerWatch(layer, asyncio.get_running_loop(), 1 / 3)
    lost = Lost()
    watch.add(lost)

    await asyncio.sleep(1.6)

    assert lost.calls == 0
    watch.discard(lost)


async def test_without_rejoining_the_expired_group_is_a_loss(fast_watch: None) -> None:
    # The control for the test above: the same layer, never re-joined.
    layer = InMemoryChannelLayer(group_expiry=1)
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    lost = Lost()
    watch.add(lost)

    await probes_until(lambda: lost.calls == 1, seconds=3)


async def test_an_earlier_probe_delivered_late_does_not_answer_a_later_one() -> None:
    layer = InMemoryChannelLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    channel = await layer.new_channel("test.")
    await layer.send(channel, {"type": PROBE_MESSAGE, "sequence": 1})
    answer = asyncio.create_task(watch._answer(channel, 2))
    await asyncio.sleep(0.05)
    assert not answer.done()

    await layer.send(channel, {"type": PROBE_MESSAGE, "sequence": 2})

    await asyncio.wait_for(answer, TIMEOUT)


async def test_each_layer_has_one_watch_per_event_loop() -> None:
    layer = DeafLayer()
    watch = watch_of(layer, None)

    assert watch is not None
    assert watch_of(layer, None) is watch
    assert watch_of(DeafLayer(), None) is not watch


def test_a_watch_from_another_event_loop_is_replaced() -> None:
    layer = DeafLayer()

    async def current() -> LayerWatch | None:
        return watch_of(layer, None)

    first, second = asyncio.run(current()), asyncio.run(current())

    assert first is not None
    assert second is not None
    assert first is not second


async def test_channels_in_memory_layer_is_not_watched() -> None:
    assert watch_of(InMemoryChannelLayer(), None) is None


@pytest.fixture
def deaf_layer(settings: Any) -> None:
    backend = f"{DeafLayer.__module__}.{DeafLayer.__qualname__}"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend}}


async def test_a_guarded_socket_closes_with_4503_when_the_watch_finds_the_layer_lost(
    configure: Configure,
    deaf_layer: None,
    fast_watch: None,
    sockets: Sockets,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    configure(LIVE_REVOCATION=True)
    inner = RecordingApp()
    communicator = await sockets.open(JWTAuthMiddleware(inner), token_for(1))
    assert await communicator.receive_nothing(0.2)

    get_channel_layer().deaf = True

    assert await communicator.receive_output(TIMEOUT) == CLOSE_UNAVAILABLE
    assert inner.scopes[0]["jwt"].close_code == 4503
    assert (
        "channels_jwt lost the channel layer (a probe went unanswered): "
        "closing 1 guarded connection(s)"
    ) in caplog.messages
    # Leaving the groups of a layer already found lost is not news: said once, above.
    assert not [m for m in caplog.messages if m.startswith("Leaving a channels_jwt group")]


class Calls:
    def __init__(self) -> None:
        self.failures = 0

    async def revoked(self) -> None:
        raise AssertionError("nothing was revoked")

    async def failed(self) -> None:
        self.failures += 1


async def test_a_loss_while_joining_fails_the_subscription_as_it_starts_listening(
    deaf_layer: None, fast_watch: None
) -> None:
    calls = Calls()
    subscription = LiveSubscription(calls.revoked, calls.failed)
    await subscription.join(1, {"jti": "a"})

    subscription._layer_lost()  # the watch's verdict, between the join and listen()
    subscription.listen()
    await probes_until(lambda: calls.failures == 1)
    await subscription.leave()

    watch = watch_of(get_channel_layer(), None)
    assert watch is not None
    assert watch.watching == 0


class StaleThenDeafLayer(DeafLayer):
    """A connection's first join fails once (a stale pooled connection); the watch's does not."""

    stale = True

    async def group_add(self, group: str, channel: str) -> None:
        if self.stale and not group.startswith("channels_jwt.watch."):
            self.stale = False
            raise ConnectionError("connection closed by server")
        await super().group_add(group, channel)


async def test_a_join_tried_twice_is_still_watched(
    configure: Configure, settings: Any, fast_watch: None, sockets: Sockets
) -> None:
    backend = f"{StaleThenDeafLayer.__module__}.{StaleThenDeafLayer.__qualname__}"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend}}
    configure(LIVE_REVOCATION=True)
    communicator = await sockets.open(JWTAuthMiddleware(RecordingApp()), token_for(1))
    assert not get_channel_layer().stale  # the first join failed, the second one did not

    get_channel_layer().deaf = True

    assert await communicator.receive_output(TIMEOUT) == CLOSE_UNAVAILABLE


async def test_leaving_stops_watching(deaf_layer: None, fast_watch: None) -> None:
    calls = Calls()
    subscription = LiveSubscription(calls.revoked, calls.failed)
    await subscription.join(1, {"jti": "a"})
    subscription.listen()
    watch = watch_of(get_channel_layer(), None)
    assert watch is not None
    assert watch.watching == 1

    await subscription.leave()

    assert watch.watching == 0
    assert calls.failures == 0


class OnceStaleLayer(InMemoryChannelLayer):
    """Its first group operation fails, like a pooled connection to a restarted server."""

    stale = True

    async def group_add(self, group: str, channel: str) -> None:
        if self.stale:
            self.stale = False
            raise ConnectionError("connection closed by server")
        await super().group_add(group, channel)


async def test_one_failure_of_a_stale_connection_is_tried_again(fast_watch: None) -> None:
    layer = OnceStaleLayer()
    watch = LayerWatch(layer, asyncio.get_running_loop(), None)
    lost = Lost()
    watch.add(lost)

    await asyncio.sleep(0.2)

    assert lost.calls == 0
    assert not layer.stale
    watch.discard(lost)


class SlowToAccept:
    """A consumer that accepts only after a while (the layer is lost before it does)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(0.5)
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@pytest.mark.parametrize(("mode", "first"), [("close", "websocket.accept"), ("deny", None)])
async def test_a_loss_before_the_application_accepts_still_closes_with_the_code(
    configure: Configure, deaf_layer: None, fast_watch: None, mode: str, first: str | None
) -> None:
    configure(LIVE_REVOCATION=True, REJECT_MODE=mode)
    get_channel_layer().deaf = True
    sockets = Sockets()
    communicator = sockets.communicator(JWTAuthMiddleware(SlowToAccept()), token_for(1))
    await communicator.send_input({"type": "websocket.connect"})

    messages = [await communicator.receive_output(TIMEOUT)]
    if first is not None:
        messages.append(await communicator.receive_output(TIMEOUT))

    assert [message["type"] for message in messages][:-1] == ([first] if first else [])
    assert messages[-1] == CLOSE_UNAVAILABLE
    assert await communicator.receive_nothing(0.7)  # the late accept is not passed on
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(TIMEOUT)
