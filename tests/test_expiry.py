"""ExpiryClock: one loop timer for many deadlines, each object called once, never early."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import pytest

from channels_jwt.expiry import ExpiryClock, cancel, expiry_clock


class Recorder:
    """Records when it was called, by the wall clock."""

    def __init__(self, calls: list[tuple[Recorder, float]]) -> None:
        self.calls = calls

    def expired(self) -> None:
        self.calls.append((self, time.time()))


class Failing:
    def expired(self) -> None:
        raise RuntimeError("boom")


def clock_timers(clock: ExpiryClock) -> int:
    """Timers of ``clock`` pending on the running loop that are not stale."""
    scheduled: list[asyncio.TimerHandle] = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    return sum(
        1
        for handle in scheduled
        if not handle.cancelled()
        and getattr(handle._callback, "__self__", None) is clock  # type: ignore[attr-defined]
        and handle._args == (clock._armed,)  # type: ignore[attr-defined]
    )


async def test_many_objects_share_one_timer_and_are_called_at_their_deadline() -> None:
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    soon, later = time.time() + 0.1, time.time() + 0.2
    first = [Recorder(calls) for _ in range(500)]
    second = [Recorder(calls) for _ in range(500)]
    for item in first:
        clock.add(soon, item)
    for item in second:
        clock.add(later, item)
    assert (len(clock), clock_timers(clock)) == (1000, 1)
    await asyncio.sleep(0.35)
    assert [item for item, _ in calls] == first + second
    assert all(at >= soon for _, at in calls[:500])
    assert all(at >= later for _, at in calls[500:])
    assert max(at for _, at in calls) - later < 0.1
    assert (len(clock), clock_timers(clock)) == (0, 0)


async def test_an_earlier_deadline_added_later_is_not_late() -> None:
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    late, early = Recorder(calls), Recorder(calls)
    clock.add(time.time() + 5, late)
    deadline = time.time() + 0.05
    clock.add(deadline, early)
    await asyncio.sleep(0.2)
    assert [item for item, _ in calls] == [early]
    assert deadline <= calls[0][1] < deadline + 0.1
    assert clock_timers(clock) == 1  # re-armed for the later one


async def test_a_cancelled_object_is_not_called_and_the_others_are() -> None:
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    kept, dropped = Recorder(calls), Recorder(calls)
    deadline = time.time() + 0.05
    clock.add(deadline, kept)
    due = clock.add(deadline, dropped)
    cancel(due, dropped)
    cancel(due, dropped)  # twice: harmless
    await asyncio.sleep(0.15)
    assert [item for item, _ in calls] == [kept]


async def test_connections_coming_and_going_at_one_deadline_schedule_it_once() -> None:
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    later = time.time() + 60
    clock.add(later, Recorder(calls))
    deadline = later - 30
    for _ in range(1000):
        item = Recorder(calls)
        cancel(clock.add(deadline, item), item)
    assert len(clock) == 1
    assert sorted(clock._deadlines) == [deadline, later]
    assert clock_timers(clock) == 1


async def test_cancelled_objects_are_not_called_and_the_clock_ends_empty() -> None:
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    items = [Recorder(calls) for _ in range(3)]
    dues = [clock.add(time.time() + 0.05 * index, item) for index, item in enumerate(items)]
    for due, item in zip(dues, items, strict=True):
        cancel(due, item)
    await asyncio.sleep(0.25)
    assert calls == []
    assert (len(clock), clock._deadlines, clock_timers(clock)) == (0, [], 0)


async def test_a_timer_firing_before_the_wall_clock_deadline_rearms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The loop's clock and the wall clock drift: the timer may fire before time.time() says
    # the deadline has come. Nobody is called early; the clock waits again.
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    deadline = time.time() + 0.1
    clock.add(deadline, Recorder(calls))
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 0.1)  # wall clock 0.1 s behind
    await asyncio.sleep(0.15)
    assert calls == []
    assert clock_timers(clock) == 1
    monkeypatch.undo()
    await asyncio.sleep(0.1)
    assert len(calls) == 1
    assert calls[0][1] >= deadline


async def test_a_failing_object_does_not_strand_the_others() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        clock = ExpiryClock()
        calls: list[tuple[Recorder, float]] = []
        deadline = time.time() + 0.05
        clock.add(deadline, Failing())
        after = Recorder(calls)
        clock.add(deadline, after)
        clock.add(deadline + 0.05, Recorder(calls))
        await asyncio.sleep(0.2)
    finally:
        loop.set_exception_handler(None)
    assert len(calls) == 2
    assert calls[0][0] is after
    assert [type(context["exception"]) for context in reported] == [RuntimeError]


async def test_a_past_deadline_is_called_on_the_next_loop_iteration() -> None:
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    clock.add(time.time() - 10, Recorder(calls))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(calls) == 1


def test_each_loop_has_its_own_clock_gone_with_the_loop() -> None:
    async def current() -> ExpiryClock:
        clock = expiry_clock()
        clock.add(time.time() + 3600, Recorder([]))  # a timer still pending at close
        return clock

    first_loop, second_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first = first_loop.run_until_complete(current())
        assert first_loop.run_until_complete(current()) is first
        assert second_loop.run_until_complete(current()) is not first
    finally:
        first_loop.close()
        second_loop.close()
    gone = weakref.ref(first)
    del first, first_loop
    gc.collect()
    assert gone() is None


async def test_a_superseded_timer_fires_into_nothing() -> None:
    # A timer armed for a deadline that an earlier one then preceded still fires at its time:
    # it must neither call anybody nor arm the clock a second time.
    clock = ExpiryClock()
    calls: list[tuple[Recorder, float]] = []
    first, second, last = Recorder(calls), Recorder(calls), Recorder(calls)
    now = time.time()
    clock.add(now + 0.1, second)  # timer 1
    clock.add(now + 0.05, first)  # timer 2; timer 1 superseded
    clock.add(now + 5, last)
    await asyncio.sleep(0.3)  # timer 2 fired, armed timer 3 for +0.1; timers 1 and 3 fired
    assert [item for item, _ in calls] == [first, second]
    scheduled: list[asyncio.TimerHandle] = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    pending = [
        handle
        for handle in scheduled
        if not handle.cancelled() and getattr(handle._callback, "__self__", None) is clock  # type: ignore[attr-defined]
    ]
    assert len(pending) == 1  # one timer, for +5 s
