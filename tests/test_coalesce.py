"""Coalescer: lookups asked while one is in flight go together, each caller on its own terms."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping
from typing import Any

import pytest

from channels_jwt.coalesce import Coalescer, LoopCoalescers


class GatedLoad:
    """A batch load that records each batch and waits for :meth:`release` to answer it."""

    def __init__(self, found: Mapping[str, str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.found = dict(found or {})
        self.gate = asyncio.Event()
        self.failure: BaseException | None = None

    async def __call__(self, keys: list[str]) -> Mapping[str, str]:
        self.batches.append(keys)
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return {key: self.found[key] for key in keys if key in self.found}

    def release(self) -> None:
        self.gate.set()


async def settle() -> None:
    """Let every ready task run (a few loop iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_lookup_starts_at_once() -> None:
    load = GatedLoad({"a": "A"})
    coalescer: Coalescer[str, str] = Coalescer(load)

    lookup = asyncio.create_task(coalescer.get("a"))
    await settle()

    assert load.batches == [["a"]]  # in flight without waiting for company
    load.release()
    assert await asyncio.wait_for(lookup, 1) == "A"


async def test_lookups_asked_during_a_batch_go_together_in_the_next() -> None:
    load = GatedLoad({"a": "A", "b": "B", "c": "C"})
    coalescer: Coalescer[str, str] = Coalescer(load)

    first = asyncio.create_task(coalescer.get("a"))
    await settle()
    later = [asyncio.create_task(coalescer.get(key)) for key in ("b", "c", "b", "zz")]
    await settle()
    load.release()

    assert await first == "A"
    assert await asyncio.wait_for(asyncio.gather(*later), 1) == ["B", "C", "B", None]
    assert load.batches == [["a"], ["b", "c", "zz"]]  # the same key asked twice: loaded once


async def test_callers_of_the_same_key_get_their_own_copies() -> None:
    async def load(keys: list[str]) -> dict[str, dict[str, str]]:
        return {"a": {"name": "alice"}}  # a new object per load, as a query makes

    coalescer: Coalescer[str, dict[str, str]] = Coalescer(load)
    alone, second, third = await asyncio.gather(*(coalescer.get("a") for _ in range(3)))

    assert alone == second == third == {"name": "alice"}
    assert len({id(alone), id(second), id(third)}) == 3  # one connection's changes stay its own


async def test_a_caller_that_gives_up_leaves_the_batch_to_the_others() -> None:
    load = GatedLoad({"a": "A", "b": "B"})
    coalescer: Coalescer[str, str] = Coalescer(load)
    alone = asyncio.create_task(coalescer.get("a"))  # loads by itself
    await settle()
    leaving = asyncio.create_task(coalescer.get("b"))  # these two wait for the next batch
    staying = asyncio.create_task(coalescer.get("b"))
    await settle()

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(leaving, 0.01)
    alone.cancel()  # the one loading gives up too: the next batch runs all the same
    load.release()

    assert await asyncio.wait_for(staying, 1) == "B"
    assert load.batches == [["a"], ["b"]]


async def test_a_failed_load_fails_its_callers_and_only_them() -> None:
    load = GatedLoad({"a": "A", "b": "B"})
    coalescer: Coalescer[str, str] = Coalescer(load)
    failing = [asyncio.create_task(coalescer.get(key)) for key in ("a", "b")]
    await settle()
    load.failure = ConnectionError("the database is down")
    load.release()
    results = await asyncio.wait_for(asyncio.gather(*failing, return_exceptions=True), 1)
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]

    load.failure = None
    assert await asyncio.wait_for(coalescer.get("b"), 1) == "B"  # the next batch is a new start


async def test_a_batch_whose_callers_all_gave_up_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    load = GatedLoad()
    coalescer: Coalescer[str, str] = Coalescer(load)
    alone = asyncio.create_task(coalescer.get("a"))
    await settle()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(coalescer.get("b"), 0.01)
    load.failure = ConnectionError("the database is down")
    load.release()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(alone, 1)
    await settle()
    load.failure = None
    gc.collect()  # an unobserved exception is reported when its future is collected

    assert load.batches == [["a"], ["b"]]
    assert "exception was never retrieved" not in caplog.text


async def test_a_cancelled_batch_cancels_its_callers_and_the_next_ones() -> None:
    load = GatedLoad()
    coalescer: Coalescer[str, str] = Coalescer(load)
    alone = asyncio.create_task(coalescer.get("a"))
    await settle()
    in_batch = asyncio.create_task(coalescer.get("b"))
    await settle()
    alone.cancel()  # the batch of "b" starts in a task of its own
    await settle()
    queued = asyncio.create_task(coalescer.get("c"))
    await settle()
    drain = coalescer._drain
    assert drain is not None

    drain.cancel()  # what closing the loop does to a pending task
    gathered = asyncio.gather(in_batch, queued, return_exceptions=True)
    results = await asyncio.wait_for(gathered, 1)

    assert [type(result) for result in results] == [asyncio.CancelledError] * 2
    assert load.batches == [["a"], ["b"]]
    load.release()
    assert await asyncio.wait_for(coalescer.get("d"), 1) is None  # and usable again


def test_each_event_loop_has_its_own_coalescer() -> None:
    loaded: list[list[str]] = []

    async def load(keys: list[str]) -> dict[str, Any]:
        loaded.append(keys)
        return {key: asyncio.get_running_loop() for key in keys}

    lookups: LoopCoalescers[str, Any] = LoopCoalescers(load)
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        answers = [loop.run_until_complete(lookups.get("a")) for loop in loops]
    finally:
        for loop in loops:
            loop.close()

    assert answers == loops  # each answered on the loop that asked
    assert loaded == [["a"], ["a"]]
