"""FakeClock(autojump=...): fake time that moves by itself when the event loop is idle, and
never while real work (a slow answer being served) is pending."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from kling_async import FakeClock, KlingClient, RetryPolicy, TaskStatus, TransportError
from kling_async.testing import Durations, Fault, KlingEmulator

QUIET = 0.005
T = TypeVar("T")


async def test_a_wait_ends_without_anyone_advancing_the_clock() -> None:
    clock = FakeClock(autojump=QUIET)
    async with KlingEmulator(clock=clock, durations=Durations(queued=5, running=315)) as emu:
        seed = emu.add_video(duration=5.0)
        async with KlingClient(**emu.client_kwargs("jwt"), clock=clock) as kling:
            started = time.monotonic()
            task = await kling.extend_video(seed.video_id)
            done = await kling.wait(task, timeout=900)
            real = time.monotonic() - started
    assert done.task_status is TaskStatus.SUCCEED
    assert 320 <= clock.monotonic() < 330  # it ended at its fake time, not at the timeout
    assert real < 10  # (typically 0.2 s)


async def test_a_sleep_on_its_own_is_woken_at_its_deadline() -> None:
    clock = FakeClock(autojump=QUIET)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.monotonic())

    await asyncio.gather(sleeper(30), sleeper(10), sleeper(10), sleeper(3600))
    assert woke == [10, 10, 30, 3600]


async def test_no_jump_while_an_answer_is_being_served() -> None:
    """A slow answer holds real-time work in the loop: fake time must not jump past the
    client's other sleepers (here one of 1000 s) while the request is in flight."""
    clock = FakeClock(autojump=QUIET)
    async with KlingEmulator(clock=clock) as emu:
        seed = emu.add_video()
        async with KlingClient(**emu.client_kwargs("jwt"), clock=clock) as kling:
            task = await kling.extend_video(seed.video_id)
            await clock.sleep(1000)  # nothing else going on: it jumps
            assert clock.monotonic() == 1000
            other = asyncio.ensure_future(clock.sleep(1000))
            emu.fault(Fault.SLOW, route="get", delay=0.3)
            before = clock.monotonic()
            now = await kling.get_task(task)
            assert clock.monotonic() == before  # 0.3 real seconds, 60 quiet periods: no jump
            assert now.task_id == task.task_id
            await other
            assert clock.monotonic() == before + 1000


async def test_a_cancelled_sleep_is_not_jumped_to() -> None:
    clock = FakeClock(autojump=QUIET)
    sleeping = asyncio.ensure_future(clock.sleep(50))
    await asyncio.sleep(0)
    sleeping.cancel()
    await asyncio.gather(sleeping, return_exceptions=True)
    await clock.sleep(7)
    assert clock.monotonic() == 7 and clock.sleepers == 0


async def test_a_real_timer_due_soon_holds_the_jump() -> None:
    """Real-time work the loop knows of (here a real sleep of 0.1 s) comes first."""
    clock = FakeClock(autojump=QUIET)
    real = asyncio.ensure_future(asyncio.sleep(0.1))
    fake = asyncio.ensure_future(clock.sleep(60))
    await asyncio.wait([real, fake], return_when=asyncio.FIRST_COMPLETED)
    assert real.done() and not fake.done() and clock.monotonic() == 0
    await fake
    assert clock.monotonic() == 60


async def test_without_autojump_time_stands_still() -> None:
    clock = FakeClock()
    with pytest.raises(asyncio.TimeoutError):  # the builtin TimeoutError only from 3.11 on
        await asyncio.wait_for(clock.sleep(1), 0.05)
    assert clock.monotonic() == 0


@pytest.mark.parametrize("autojump", [0, -1, float("inf"), float("nan")])
def test_autojump_must_be_a_positive_time(autojump: float) -> None:
    with pytest.raises(ValueError, match="autojump"):
        FakeClock(autojump=autojump)


def test_autojump_true_is_the_typical_quiet_period() -> None:
    assert FakeClock(autojump=True).autojump == 0.005
    assert FakeClock(autojump=False).autojump is None
    assert FakeClock().autojump is None


async def _a_run() -> list[tuple[int, str, float]]:
    """Three extends of different lengths watched together: the changes and when they came."""
    clock = FakeClock(autojump=QUIET)
    durations = Durations.per_task(lambda body: (2.0, float(len(body["prompt"]) * 40)))
    async with KlingEmulator(clock=clock, durations=durations) as emu:
        seed = emu.add_video()
        async with KlingClient(**emu.client_kwargs("jwt"), clock=clock) as kling:
            tasks = [await kling.extend_video(seed.video_id, prompt="p" * n) for n in (3, 1, 7)]
            order = {t.task_id: i for i, t in enumerate(tasks)}
            return [
                (order[c.task_id], c.current.value, c.at)
                async for c in kling.watch(tasks, timeout=3600)
            ] + [(-1, "polls", float(sum(emu.stats.requests.values())))]


async def test_runs_are_deterministic() -> None:
    first, second = await _a_run(), await _a_run()
    assert first == second
    ends = [i for i, status, _ in first if status == "succeed"]
    assert ends == [1, 0, 2]  # in the order of their lengths


def test_a_clock_moves_on_in_a_new_event_loop() -> None:
    """One clock for two ``asyncio.run()`` calls: a sleeper left behind by the first loop (which
    can never be woken) neither blocks nor confuses the second."""
    clock = FakeClock(autojump=QUIET)

    async def first() -> None:
        asyncio.get_running_loop().create_task(clock.sleep(5))  # abandoned with its loop
        await clock.sleep(1)

    async def second() -> float:
        await clock.sleep(60)
        return clock.monotonic()

    asyncio.run(first())
    assert asyncio.run(second()) == 61


async def test_a_ticker_gets_every_tick() -> None:
    clock = FakeClock(autojump=QUIET)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await clock.sleep(1)
            ticks += 1

    running = asyncio.ensure_future(ticker())
    await clock.sleep(30.5)
    running.cancel()
    assert ticks == 30 and clock.monotonic() == 30.5


async def test_no_jump_while_a_request_to_another_thread_is_in_flight() -> None:
    """The loop cannot see a server in another thread (or process) working on an answer; the
    client's own requests hold the clock still until they end."""
    clock = FakeClock(autojump=QUIET)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def there(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=10)

    async def start() -> KlingEmulator:
        return await KlingEmulator().__aenter__()  # real time, in the other thread

    emu = there(start())
    try:
        seed = emu.add_video()
        emu.fault(Fault.SLOW, route="get", delay=0.3)
        # a static key: the emulator runs on real time, the client on fake time (no JWT claims)
        async with KlingClient(**emu.client_kwargs("key"), clock=clock) as kling:
            other = asyncio.ensure_future(clock.sleep(1000))
            task = await kling.get_task(seed.task_id, kind="text2video")
            assert clock.monotonic() == 0  # 60 quiet periods of our loop, but a request was out
            assert task.task_id == seed.task_id
            await other
            assert clock.monotonic() == 1000
    finally:
        there(emu.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def test_a_failed_request_lets_time_move_again() -> None:
    clock = FakeClock(autojump=QUIET)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"  # nobody listens: connection refused
    async with KlingClient(
        api_key="k", base_url=base_url, clock=clock, retry=RetryPolicy.no_wait()
    ) as kling:
        with pytest.raises(TransportError):
            await kling.get_task("t1")
        await clock.sleep(10)  # the hold was released: this jumps
    assert clock.monotonic() == 10
