"""The client's one slot gate: concurrent creates wait in order for a slot instead of failing
on 1303, learn the limit fast, and never leak a slot (emulator on a fake clock)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from kling_async import (
    AmbiguousSubmitError,
    ConcurrencyLimitError,
    ConfigurationError,
    FakeClock,
    KlingClient,
    SlotTimeoutError,
    Task,
    TaskStatus,
)
from kling_async.journal import Journal
from kling_async.slots.gate import SlotGate
from kling_async.testing import Durations, Fault, KlingEmulator

from .conftest import MakeClient, MakeEmulator, created, requests_to
from .watching import run_batch, run_clock


def refused(emu: KlingEmulator) -> int:
    return emu.stats.requests[("POST", "create", 429)]


def created_order(emu: KlingEmulator) -> list[str]:
    records = sorted(emu.tasks.values(), key=lambda r: r.seq)
    return [r.body["prompt"] for r in records if r.body.get("prompt")]


async def until(predicate: object, *, rounds: int = 2_000) -> None:
    """Let real loopback I/O run (the fake clock stands still) until ``predicate()``."""
    for _ in range(rounds):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition never held")


async def extend_and_wait(kling: KlingClient, video_id: str, prompt: str) -> Task:
    task = await kling.extend_video(video_id, prompt=prompt)
    return await kling.wait(task)


@pytest.mark.parametrize("slots", [None, 5])
async def test_gather_of_many_creates_under_a_limit_all_succeed_in_order(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, slots: int | None
) -> None:
    emu = await make_emulator(slot_limit=5, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, slots=slots)
    prompts = [f"p{i:02d}" for i in range(40)]
    job = asyncio.ensure_future(
        asyncio.gather(*(extend_and_wait(kling, seed.video_id, p) for p in prompts))
    )
    await run_clock(clock, kling, job.done)
    done = await job
    assert all(t.task_status is TaskStatus.SUCCEED for t in done)
    assert created(emu) == 40
    assert emu.stats.max_slots_in_use == 5
    if slots is None:  # learned: a few probes, about one create per task
        # (a refused probe goes back to the head of the line; one sent beside it may pass)
        assert sorted(created_order(emu)) == prompts
        assert refused(emu) <= 6
        assert kling.gate.refusals == refused(emu)
    else:
        assert refused(emu) == 0
        assert created_order(emu) == prompts  # first come, first served
    assert requests_to(emu, "create") == 40 + refused(emu)
    assert (kling.gate.in_use, kling.gate.waiting, kling.gate.running) == (0, 0, 0)


async def test_a_limit_that_drops_mid_run_is_followed_without_losing_a_create(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """A resource pack expires: the account goes from 6 slots to 3 while tasks run."""
    emu = await make_emulator(slot_limit=6, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, slots=6)
    job = asyncio.ensure_future(
        asyncio.gather(*(extend_and_wait(kling, seed.video_id, f"d{i}") for i in range(30)))
    )
    await run_clock(clock, kling, lambda: clock.monotonic() >= 30)
    assert refused(emu) == 0
    emu.slot_limit = 3
    await run_clock(clock, kling, job.done)
    assert all(t.task_status is TaskStatus.SUCCEED for t in await job)
    assert created(emu) == 30
    assert kling.gate.allowed <= 4  # learned: at most what the account now holds, plus a probe
    assert 1 <= refused(emu) <= 8  # one refused POST per step down, a few probes later


async def test_slots_held_by_another_process_wait_with_backoff_logged_once(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = await make_emulator(slot_limit=3, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    neighbour = make_client(emu)
    for _ in range(3):
        await neighbour.extend_video(seed.video_id)  # every slot is held elsewhere
    kling = make_client(emu, slots=3)
    caplog.set_level(logging.INFO, logger="kling_async")
    job = asyncio.ensure_future(
        asyncio.gather(*(extend_and_wait(kling, seed.video_id, f"o{i}") for i in range(4)))
    )
    await run_clock(clock, kling, job.done)
    assert all(t.task_status is TaskStatus.SUCCEED for t in await job)
    assert created(emu) == 7
    assert refused(emu) >= 2  # it did have to wait...
    held_elsewhere = [r for r in caplog.records if "another process" in r.getMessage()]
    assert len(held_elsewhere) == 1  # ...and said so once for the episode, not per attempt
    assert held_elsewhere[0].levelno == logging.WARNING


async def test_cancelling_a_create_waiting_for_a_slot_creates_nothing_and_leaks_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(slot_limit=1, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, slots=1)
    await kling.extend_video(seed.video_id, prompt="first")
    waiting = asyncio.ensure_future(kling.extend_video(seed.video_id, prompt="cancelled"))
    await until(lambda: kling.gate.waiting == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert requests_to(emu, "create") == 1
    assert (kling.gate.in_use, kling.gate.waiting) == (1, 0)
    # The cancelled caller held nothing: the next create gets the slot as soon as the first
    # task ends, without a refusal.
    third = asyncio.ensure_future(kling.extend_video(seed.video_id, prompt="third"))
    await run_clock(clock, kling, third.done)
    await third
    assert created_order(emu) == ["first", "third"]
    assert refused(emu) == 0
    assert kling.gate.in_use == 1


async def test_slow_start_reaches_the_limit_in_logarithmic_refusals(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    for limit in (16, 64):
        emu = await make_emulator(slot_limit=limit, durations=Durations(queued=1, running=900))
        seed = emu.add_video()
        kling = make_client(emu)
        jobs = [
            asyncio.ensure_future(kling.extend_video(seed.video_id, prompt=f"s{i}"))
            for i in range(limit + 20)
        ]
        await until(lambda: kling.gate.running == limit and kling.gate.waiting == 20)  # noqa: B023
        assert created(emu) == limit
        assert 1 <= refused(emu) <= limit.bit_length()
        assert kling.gate.allowed == limit
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        assert created(emu) == limit  # the waiters cancelled created nothing


async def test_slot_timeout_raises_and_says_nothing_was_created(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(slot_limit=1, durations=Durations(queued=1, running=200))
    seed = emu.add_video()
    kling = make_client(emu, slots=1, slot_timeout=50)
    await kling.extend_video(seed.video_id)
    per_call = asyncio.ensure_future(kling.extend_video(seed.video_id, slot_timeout=10))
    per_client = asyncio.ensure_future(kling.extend_video(seed.video_id))
    await run_clock(clock, kling, per_call.done)
    with pytest.raises(SlotTimeoutError) as info:
        await per_call
    assert 10 <= clock.monotonic() < 50 and not per_client.done()
    await run_clock(clock, kling, per_client.done)
    with pytest.raises(SlotTimeoutError):
        await per_client
    error = info.value
    assert isinstance(error, ConcurrencyLimitError) and error.timeout == 10
    assert "no task was created" in str(error)
    assert requests_to(emu, "create") == 1
    assert (kling.gate.in_use, kling.gate.waiting) == (1, 0)
    with pytest.raises(ValueError, match="slot_timeout"):
        make_client(emu, slot_timeout=0)


async def test_a_task_seen_ending_by_the_users_own_wait_frees_its_slot(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(slot_limit=1, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, slots=1)
    task = await kling.extend_video(seed.video_id)
    waited = asyncio.ensure_future(kling.wait(task))
    await run_clock(clock, kling, waited.done)
    await waited
    assert (kling.gate.in_use, kling.gate.running) == (0, 0)
    polls = kling.scheduler.polls_sent
    await kling.extend_video(seed.video_id)  # at once: no poll needed to learn the slot is free
    assert kling.scheduler.polls_sent == polls


async def test_a_trusted_callback_for_an_unwatched_task_frees_its_slot(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(slot_limit=1)
    seed = emu.add_video()
    kling = make_client(emu, slots=1)
    task = await kling.extend_video(seed.video_id)
    ended = Task(kind=task.kind, task_id=task.task_id, task_status=TaskStatus.SUCCEED)
    assert kling.scheduler.hint(ended, trusted=False) is False
    assert kling.gate.in_use == 1  # an unverified claim is not enough
    kling.scheduler.hint(ended, trusted=True)
    assert (kling.gate.in_use, kling.gate.running) == (0, 0)
    kling.scheduler.hint(ended, trusted=True)  # released once only
    assert kling.gate.in_use == 0


async def test_an_ambiguous_create_keeps_its_slot_until_its_task_would_have_ended(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """Before any task of its kind ended, "would have ended" is the kind's prior (320 s)."""
    emu = await make_emulator(slot_limit=2)
    seed = emu.add_video()
    kling = make_client(emu, "relay", slots=2)  # a relay scan that finds nothing proves nothing
    emu.fault(Fault.SERVER_5000, route="create", times=1)
    with pytest.raises(AmbiguousSubmitError):
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    assert kling.gate.in_use == 1  # it may exist and run: its slot stays taken
    await clock.advance(2 * 320 - 10)
    await asyncio.sleep(0.01)
    assert kling.gate.in_use == 1
    await clock.advance(11)
    await until(lambda: kling.gate.in_use == 0)


async def test_an_ambiguous_create_is_held_as_long_as_learned_tasks_run_not_the_prior(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """Once tasks of the profile were seen to end within ~21 s, a lost answer's slot is kept
    about twice that, not twice the 320-s prior: a batch never waits minutes on a guess."""
    emu = await make_emulator(slot_limit=2, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, "relay", slots=2)
    for i in range(3):
        task = await kling.extend_video(seed.video_id, parent_task_id=seed.task_id, prompt=f"w{i}")
        waiting = asyncio.ensure_future(kling.wait(task))
        await run_clock(clock, kling, waiting.done)
        assert (await waiting).task_status is TaskStatus.SUCCEED
    emu.fault(Fault.SERVER_5000, route="create", times=1)
    with pytest.raises(AmbiguousSubmitError):
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id, prompt="warm0")
    assert kling.gate.in_use == 1
    await clock.advance(40)
    await asyncio.sleep(0.01)
    assert kling.gate.in_use == 1  # about as long as such a task can run...
    await clock.advance(10)
    await until(lambda: kling.gate.in_use == 0)  # ...and no longer (the prior would be 640 s)


async def test_a_resumed_batch_starts_from_the_limit_it_learned(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(slot_limit=8, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    journal = tmp_path / "batch.sqlite"
    first = make_client(emu)
    requests = [{"video_id": seed.video_id, "prompt": f"r{i}"} for i in range(30)]
    outcomes = await run_batch(clock, first, first.extend_many(requests, journal=journal))
    assert {o.outcome for o in outcomes} == {"succeed"}
    assert refused(emu) >= 1  # it had to learn
    async with await Journal.open(journal) as opened:
        assert await opened.slot_limit() == 8
    before = refused(emu)
    again = make_client(emu)
    more = [*requests, *({"video_id": seed.video_id, "prompt": f"m{i}"} for i in range(12))]
    batch = again.extend_many(more, journal=journal)

    async def consume() -> list[str]:
        return [o.outcome async for o in batch]

    consumer = asyncio.ensure_future(consume())
    await until(lambda: again.gate.running == 8)  # the clock stands still: no task ends
    assert refused(emu) == before  # no slow start: eight at once, none refused
    await run_clock(clock, again, consumer.done)
    assert (await consumer).count("succeed") == 42


async def test_a_waiter_granted_a_slot_just_as_it_is_cancelled_gives_it_back() -> None:
    gate = SlotGate(FakeClock(), limit=1)
    first = await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    assert gate.waiting == 1
    first.release()  # hands the slot to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (gate.in_use, gate.waiting) == (0, 0)
    first.release()  # releasing twice is a no-op
    assert gate.in_use == 0
    assert (await gate.acquire()).weight == 1


async def test_a_batch_and_ad_hoc_creates_share_the_clients_slots(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(slot_limit=3, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, slots=3)
    batch = kling.extend_many([{"video_id": seed.video_id, "prompt": f"b{i}"} for i in range(9)])

    async def consume() -> list[str]:
        return [o.outcome async for o in batch]

    batch_job = asyncio.ensure_future(consume())
    await until(lambda: kling.gate.in_use == 3)
    ad_hoc = asyncio.ensure_future(
        asyncio.gather(*(extend_and_wait(kling, seed.video_id, f"a{i}") for i in range(3)))
    )
    await until(lambda: kling.gate.waiting >= 3)
    assert batch.progress.slot_limit == 3 and batch.progress.slots_in_use == 3
    await run_clock(clock, kling, lambda: batch_job.done() and ad_hoc.done())
    assert (await batch_job).count("succeed") == 9
    assert all(t.task_status is TaskStatus.SUCCEED for t in await ad_hoc)
    assert refused(emu) == 0 and emu.stats.max_slots_in_use == 3
    order = created_order(emu)
    # The ad-hoc creates were not starved behind the six batch requests still to come.
    assert max(order.index(f"a{i}") for i in range(3)) < order.index("b8")


async def test_an_image_task_holds_one_slot_per_image(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(slot_limit=4, durations=Durations(queued=1, running=20))
    kling = make_client(emu, slots=4)
    await kling.generate_images("a cat", n=3)
    assert kling.gate.in_use == 3
    second = asyncio.ensure_future(kling.generate_images("a dog", n=2))
    await until(lambda: kling.gate.waiting == 1)
    await run_clock(clock, kling, second.done)
    await second
    assert refused(emu) == 0 and emu.stats.max_slots_in_use == 3


async def test_bad_slot_settings_are_refused_before_any_request(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    for bad in ({"slots": 0}, {"slots": 2.5}, {"slot_timeout": -1}):
        with pytest.raises(ConfigurationError):
            make_client(emu, **bad)
    kling = make_client(emu)
    with pytest.raises(ValueError, match="slot_timeout"):
        await kling.extend_video(emu.add_video().video_id, slot_timeout=0)
    assert requests_to(emu, "create") == 0


async def test_a_given_limit_recovers_from_spurious_refusals_within_a_round(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """slots=10 stated, the account has 10; two spurious 1303s while one task of ours runs
    shrink the limit to 1. Each create that succeeds then wins a slot back, so the batch runs
    10 at a time again at once, instead of one slot per `limit` task ends (~45 ends to 10)."""
    emu = await make_emulator(slot_limit=10, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, slots=10)
    await kling.extend_video(seed.video_id, prompt="first")
    emu.refuse(1303, route="create", times=2)
    second = asyncio.ensure_future(kling.extend_video(seed.video_id, prompt="second"))
    await run_clock(clock, kling, second.done)
    assert refused(emu) == 2
    job = asyncio.ensure_future(
        asyncio.gather(*(extend_and_wait(kling, seed.video_id, f"s{i}") for i in range(40)))
    )
    took = await run_clock(clock, kling, job.done)
    assert all(t.task_status is TaskStatus.SUCCEED for t in await job)
    assert created(emu) == 42
    assert kling.gate.allowed == 10
    # 40 tasks of ~21 s, 10 at a time: 4 rounds, ~90 s; regaining one slot per `limit` ends
    # takes twice that.
    assert took < 120
