"""watch() and wait(): every transition once and in order, at scale, through faults, with
deadlines, and clean when left early."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from kling_async import (
    AuthenticationError,
    FakeClock,
    KlingClient,
    NotFoundError,
    RetryPolicy,
    StatusChange,
    Task,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
)
from kling_async.testing import Durations, Fault, KlingEmulator

from .conftest import MakeClient, MakeEmulator, requests_to
from .watching import first_poll_delay, our_tasks, run_clock, settle

S, P, OK, FAIL = (
    TaskStatus.SUBMITTED,
    TaskStatus.PROCESSING,
    TaskStatus.SUCCEED,
    TaskStatus.FAILED,
)


async def create_many(kling: KlingClient, emu: KlingEmulator, n: int, **fields: Any) -> list[Task]:
    seed = emu.add_video()
    return list(
        await asyncio.gather(*(kling.extend_video(seed.video_id, **fields) for _ in range(n)))
    )


async def collect(watch: Any, sink: list[StatusChange]) -> None:
    async for change in watch:
        sink.append(change)


def by_task(changes: list[StatusChange]) -> dict[str, list[StatusChange]]:
    out: dict[str, list[StatusChange]] = {}
    for change in changes:
        out.setdefault(change.task_id, []).append(change)
    return out


def assert_well_formed(history: list[StatusChange]) -> None:
    """First observation, then changes only: no repeats, each previous is the last current."""
    assert history[0].previous is None
    for before, after in itertools.pairwise(history):
        assert after.previous == before.current
        assert after.current != before.current
    assert history[-1].is_final
    assert not any(c.is_final for c in history[:-1])


async def test_a_thousand_tasks_yield_every_transition_once_and_in_order(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(
        durations=Durations.random(mean_running=40, spread=20, queued=2, seed=3),
        failure_rate=0.3,
        seed=3,
    )
    kling = make_client(emu, max_polls_per_second=None, max_polls_in_flight=50)
    tasks = await create_many(kling, emu, 1000)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch(tasks), changes))
    await run_clock(clock, kling, consumer.done)
    await consumer
    histories = by_task(changes)
    assert len(histories) == 1000
    outcomes = {OK: 0, FAIL: 0}
    for task_id, history in histories.items():
        assert_well_formed(history)
        truth = FAIL if emu.tasks[task_id].failure else OK
        assert [c.current for c in history] == [S, P, truth]
        outcomes[truth] += 1
        if truth is FAIL:
            assert history[-1].task.task_status_msg
        else:
            assert history[-1].task.video is not None
    assert 200 < outcomes[FAIL] < 400
    assert kling.scheduler.tracked == 0
    assert our_tasks() == []
    # One GET per poll. Durations here spread +-50 % (22-62 s) and the first ones are learned
    # while every task runs: the learned cadence keeps lag within ~5 % of each task's duration
    # at about ten polls a task, where a fixed 5-s loop would need ~9 and see ends 2.5 s late.
    assert requests_to(emu, "get") / 1000 < 12


async def test_random_poll_faults_never_end_the_stream(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30), failure_rate=0.2)
    kling = make_client(emu, max_polls_per_second=None)
    tasks = await create_many(kling, emu, 200)
    emu.random_faults(
        0.05,
        kinds=(Fault.GATEWAY_HTML_502, Fault.SERVER_5001, Fault.DROP_BEFORE, Fault.TRUNCATED_JSON),
        seed=5,
        route="get",
    )
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch(tasks), changes))
    await run_clock(clock, kling, consumer.done, step=0.5)
    await consumer
    histories = by_task(changes)
    assert len(histories) == 200
    for task_id, history in histories.items():
        assert_well_formed(history)
        assert history[-1].error is None and not history[-1].timed_out
        assert history[-1].current is (FAIL if emu.tasks[task_id].failure else OK)
    assert sum(n for (m, r, s), n in emu.stats.requests.items() if r == "get" and s != 200) > 0


async def test_an_extend_is_polled_at_most_25_times(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=5, running=315))
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task]), changes))
    await run_clock(clock, kling, consumer.done, step=0.25)
    polls = requests_to(emu, "get")
    assert 10 <= polls <= 25
    final = changes[-1]
    assert final.current is OK
    ended_at = task.created_at / 1000 + 320
    # within the dense spacing near the end (a share of the task's age), plus a clock step
    assert 0 <= final.at - ended_at <= kling.scheduler.cadence.lag * (320 + 14) + 0.25


async def test_leaving_the_loop_early_stops_polling_at_once(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=600))
    kling = make_client(emu)
    tasks = await create_many(kling, emu, 30)
    watch = kling.watch(tasks)
    seen = 0
    async for _ in watch:
        seen += 1
        if seen == 5:
            break
    for _ in range(3):
        await asyncio.sleep(0)
    assert kling.scheduler.tracked == 0
    polls = requests_to(emu, "get")
    await clock.advance(100)
    await settle(kling)
    assert requests_to(emu, "get") == polls
    assert our_tasks() == []
    assert {t.task_id for t in watch.unfinished if isinstance(t, Task)} == {
        t.task_id for t in tasks
    }


async def test_cancelling_the_consumer_mid_stream_is_clean(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=600))
    kling = make_client(emu, max_polls_per_second=None)
    tasks = await create_many(kling, emu, 40)
    watch = kling.watch(tasks)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(watch, changes))
    await asyncio.sleep(0)  # the consumer starts and registers its tasks
    await clock.advance(first_poll_delay(kling))  # every task is due: 40 polls start
    await asyncio.sleep(0)
    assert kling.scheduler.in_flight > 0
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert kling.scheduler.tracked == 0
    assert kling.scheduler.in_flight == 0
    assert our_tasks() == []
    assert len(watch.unfinished) == 40


async def test_deadline_marks_only_the_slow_task(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(
        durations=Durations.per_task(lambda body: (2, 5000 if body.get("prompt") == "slow" else 20))
    )
    kling = make_client(emu)
    seed = emu.add_video()
    slow = await kling.extend_video(seed.video_id, prompt="slow")
    quick = await kling.extend_video(seed.video_id, prompt="quick")
    changes: list[StatusChange] = []
    watch = kling.watch([slow, quick], timeout=120)
    consumer = asyncio.ensure_future(collect(watch, changes))
    elapsed = await run_clock(clock, kling, consumer.done)
    histories = by_task(changes)
    assert [c.current for c in histories[quick.task_id]] == [S, P, OK]
    timed_out = histories[slow.task_id][-1]
    assert timed_out.timed_out and timed_out.current is P and timed_out.is_final
    assert 120 <= elapsed <= 122
    assert [t.task_id for t in watch.unfinished if isinstance(t, Task)] == [slow.task_id]


async def test_deadline_can_raise(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=5000))
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    consumer = asyncio.ensure_future(
        collect(kling.watch([task], timeout=60, on_timeout="raise"), [])
    )
    await run_clock(clock, kling, consumer.done)
    with pytest.raises(TaskTimeoutError) as info:
        await consumer
    assert info.value.task_id == task.task_id
    assert info.value.last is not None and info.value.last.task_status is P


async def test_wait_returns_the_finished_task(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=60))
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    waiting = asyncio.ensure_future(kling.wait(task, timeout=900))
    await run_clock(clock, kling, waiting.done)
    done = await waiting
    assert done.task_status is OK and done.video is not None and done.video.url


async def test_wait_raises_on_failure_with_the_reason(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(
        durations=Durations(queued=3, running=60), fail_when=lambda body: "Image pixel is invalid"
    )
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    waiting = asyncio.ensure_future(kling.wait(task.task_id))
    await run_clock(clock, kling, waiting.done)
    with pytest.raises(TaskFailedError, match="Image pixel is invalid") as info:
        await waiting
    assert info.value.task.task_status is FAIL


async def test_wait_times_out_and_keeps_the_id(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=5000))
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    waiting = asyncio.ensure_future(kling.wait(task, timeout=30))
    await run_clock(clock, kling, waiting.done)
    with pytest.raises(TaskTimeoutError) as info:
        await waiting
    assert info.value.task_id == task.task_id
    assert emu.tasks[task.task_id].task_id == task.task_id  # still there on the server


async def test_many_waits_share_one_scheduler_and_one_poll_per_due_task(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=60))
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    waits = [asyncio.ensure_future(kling.wait(task)) for _ in range(10)]
    alone = make_client(emu)
    lone_wait = asyncio.ensure_future(alone.wait(task))
    both = asyncio.gather(*waits, lone_wait)
    await run_clock(clock, kling, both.done)
    await settle(alone)
    results = await both
    assert {t.task_status for t in results} == {OK}
    assert alone.scheduler.polls_sent == kling.scheduler.polls_sent  # ten waits, one set of polls


async def test_unknown_status_is_reported_and_polled_on(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=60))
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    emu.fault(Fault.UNKNOWN_STATUS, route="get")
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task]), changes))
    await run_clock(clock, kling, consumer.done)
    statuses = [c.current for c in changes]
    assert statuses[:2] == [S, TaskStatus.UNKNOWN]
    assert changes[1].task.raw_status == "queued"
    assert statuses[-1] is OK
    assert_well_formed(changes)


async def test_tasks_can_be_added_while_watching(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=30))
    kling = make_client(emu)
    first, second = await create_many(kling, emu, 2)
    watch = kling.watch([first])
    changes: list[StatusChange] = []

    async def consume() -> None:
        async for change in watch:
            changes.append(change)
            if change.task_id == first.task_id and change.current is P:
                watch.add(second.task_id)

    consumer = asyncio.ensure_future(consume())
    await run_clock(clock, kling, consumer.done)
    histories = by_task(changes)
    assert histories[second.task_id][0].previous is None
    assert histories[second.task_id][-1].current is OK
    assert histories[first.task_id][-1].current is OK


async def test_a_missing_task_ends_alone_with_its_error(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=30))
    kling = make_client(emu)
    (task,) = await create_many(kling, emu, 1)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task, "999999999999999999"]), changes))
    await run_clock(clock, kling, consumer.done)
    histories = by_task(changes)
    (missing,) = histories["999999999999999999"]
    assert isinstance(missing.error, NotFoundError) and missing.is_final
    assert histories[task.task_id][-1].current is OK


async def test_bad_credentials_end_the_whole_watch(emu: KlingEmulator, clock: FakeClock) -> None:
    async with KlingClient(
        api_key="wrong", base_url=emu.url, clock=clock, retry=RetryPolicy.no_wait()
    ) as kling:
        consumer = asyncio.ensure_future(collect(kling.watch(["1", "2"]), []))
        await run_clock(clock, kling, consumer.done)
        with pytest.raises(AuthenticationError):
            await consumer
        await asyncio.sleep(0)
        assert kling.scheduler.tracked == 0


async def test_poll_budget_is_shared_by_all_tasks(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=3, running=5000))
    kling = make_client(emu, max_polls_per_second=2.0)
    tasks = await create_many(kling, emu, 40)
    watch = kling.watch(tasks)
    consumer = asyncio.ensure_future(collect(watch, []))
    first = first_poll_delay(kling)  # every task falls due then
    await run_clock(clock, kling, lambda: clock.monotonic() >= first + 10, step=0.5)
    polls = requests_to(emu, "get")
    # from the first poll on, at most 2 a second plus a burst of 2
    assert 18 <= polls <= 2 * 10 + 2, (polls, first)
    watch.close()
    await consumer


def test_a_token_a_float_step_short_is_a_token() -> None:
    # A refill that falls a rounding error short of a whole token must not ask for a wait too
    # small to move the clock: that was a busy loop (40 tasks due at an odd time, 2 polls/s).
    from kling_async.polling.cadence import Cadence
    from kling_async.polling.scheduler import PollScheduler

    async def fetch(*_: object) -> Task:
        raise AssertionError("not polled here")

    clock = FakeClock()
    scheduler = PollScheduler(
        fetch, clock=clock, cadence=Cadence(), retry_delay=lambda *_: 1.0, max_polls_per_second=2
    )
    scheduler._tokens = 1.0 - 1e-13
    assert scheduler._take_token(clock.monotonic()) == 0.0
    assert scheduler._take_token(clock.monotonic()) == pytest.approx(0.5)
