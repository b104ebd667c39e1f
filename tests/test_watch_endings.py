"""How a watch ends, or does not: credentials that stop working end it with the error (a far
clock named), any exception in a poll is retried, never a silent stop, and no status repeats
on the stream, UNKNOWN included."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kling_async import (
    AuthenticationError,
    FakeClock,
    KlingClient,
    RetryPolicy,
    StatusChange,
    Task,
    TaskStatus,
)
from kling_async.kinds import Kind
from kling_async.polling.cadence import Cadence
from kling_async.polling.scheduler import PollScheduler
from kling_async.testing import Durations, Fault

from .conftest import MakeClient, MakeEmulator, requests_to
from .test_watch import assert_well_formed, collect
from .watching import run_clock


@pytest.mark.parametrize(("offset", "side"), [(-7200.0, "behind"), (7200.0, "ahead of")])
async def test_a_far_clock_ends_wait_and_watch_with_the_error_naming_the_skew(
    make_emulator: MakeEmulator, make_client: MakeClient, offset: float, side: str
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=60))
    seed = emu.add_video()
    task = await make_client(emu).extend_video(seed.video_id)
    far = FakeClock(start_time=emu.clock.time() + offset)
    async with KlingClient(
        **emu.client_kwargs("jwt"), clock=far, retry=RetryPolicy.no_wait()
    ) as kling:
        waiting = asyncio.ensure_future(kling.wait(task))
        changes: list[StatusChange] = []
        watching = asyncio.ensure_future(collect(kling.watch([task.task_id]), changes))
        both = asyncio.gather(waiting, watching, return_exceptions=True)
        await run_clock(far, kling, both.done, limit=600)
        for outcome in await both:
            assert isinstance(outcome, AuthenticationError), outcome
            assert outcome.code in (1003, 1004)
            assert f"s {side} the server's" in str(outcome)
            # (the far clock runs on while the emulator's stands still: a few minutes' drift)
            assert outcome.clock_skew is not None and abs(outcome.clock_skew + offset) < 600
        # Retried once with a fresh token, then given up: not polled forever.
        assert requests_to(emu, "get") <= 6
        assert kling.scheduler.tracked == 0


async def test_an_exception_inside_a_poll_is_logged_and_retried(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=30))
    seed = emu.add_video()
    kling = make_client(emu)
    task = await kling.extend_video(seed.video_id)
    raised = 0

    async def fetch(kind: Kind, task_id: str) -> Task:
        nonlocal raised
        if raised < 3:  # e.g. RecursionError from a deeply nested answer
            raised += 1
            raise RecursionError("maximum recursion depth exceeded")
        return await kling.scheduler._fetch(kind, task_id)

    scheduler = PollScheduler(
        fetch, clock=clock, cadence=Cadence(), retry_delay=RetryPolicy.no_wait().delay
    )
    from kling_async.polling.watch import TaskWatch

    changes: list[StatusChange] = []
    with caplog.at_level(logging.ERROR, logger="kling_async"):
        consumer = asyncio.ensure_future(collect(TaskWatch(scheduler, [task]), changes))
        await run_clock(clock, kling, consumer.done, limit=600)
    await consumer
    await scheduler.aclose()
    assert raised == 3
    assert changes[-1].current is TaskStatus.SUCCEED  # not a silent stop, not a hang
    assert sum("RecursionError" in r.getMessage() for r in caplog.records) == 3


async def test_unknown_after_processing_is_not_a_change(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=120))
    seed = emu.add_video()
    kling = make_client(emu)
    task = await kling.extend_video(seed.video_id)
    watch = kling.watch([task])
    changes: list[StatusChange] = []

    async def consume() -> None:
        async for change in watch:
            changes.append(change)
            if change.current is TaskStatus.PROCESSING:  # then "queued" twice, then processing
                emu.fault(Fault.UNKNOWN_STATUS, route="get", times=2)

    consumer = asyncio.ensure_future(consume())
    await run_clock(clock, kling, consumer.done)
    await consumer
    assert [c.current for c in changes] == [
        TaskStatus.SUBMITTED,
        TaskStatus.PROCESSING,
        TaskStatus.SUCCEED,
    ]
    assert_well_formed(changes)
    assert emu.stats.requests[("GET", "get", 200)] >= 4  # the UNKNOWN answers did come


async def test_a_poll_cancelled_before_it_ran_is_not_counted_in_flight_forever(
    clock: FakeClock,
) -> None:
    fetched: list[str] = []

    async def fetch(kind: Kind, task_id: str) -> Task:
        fetched.append(task_id)
        raise AssertionError("never reached: the watch left first")

    scheduler = PollScheduler(
        fetch, clock=clock, cadence=Cadence(), retry_delay=RetryPolicy.no_wait().delay
    )
    from kling_async.kinds import kind_named
    from kling_async.polling.watch import TaskWatch

    watch = TaskWatch(scheduler, [])
    scheduler.track("t1", kind_named("video-extend"), watch)
    await asyncio.sleep(0)  # the scheduler's loop starts the poll...
    assert scheduler.in_flight == 1
    scheduler.untrack("t1", watch)  # ...and the watch leaves before the poll ever ran
    for _ in range(5):
        await asyncio.sleep(0)
    assert fetched == []
    assert scheduler.in_flight == 0  # else settle() and the budget see a poll for ever
    await scheduler.aclose()
