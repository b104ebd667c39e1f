"""extend_many and extend_until against the emulator: slots, 1303 storms, lost answers, 1102,
journals and resuming, chains."""

from __future__ import annotations

import asyncio
import collections
import itertools
from pathlib import Path

import pytest

from kling_async import (
    FakeClock,
    InsufficientBalanceError,
    RequestValidationError,
    VideoExtendRequest,
)
from kling_async.journal import Intent, Journal
from kling_async.serde import unstructure_request
from kling_async.testing import Durations, Fault, KlingEmulator

from .conftest import MakeClient, MakeEmulator, created, requests_to
from .watching import run_batch, run_clock


def refusals(emu: KlingEmulator, code_status: int = 429) -> int:
    return emu.stats.requests[("POST", "create", code_status)]


async def test_500_requests_with_10_slots_finish_exactly_once(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(
        slot_limit=10, durations=Durations(queued=1, running=20), failure_rate=0.1
    )
    kling = make_client(emu, max_polls_per_second=None)
    seed = emu.add_video()
    batch = kling.extend_many(
        [VideoExtendRequest(video_id=seed.video_id, prompt=f"take {i}") for i in range(500)],
        slots=10,
    )
    outcomes = await run_batch(clock, kling, batch)
    kinds = collections.Counter(o.outcome for o in outcomes)
    assert sum(kinds.values()) == 500
    assert set(kinds) <= {"succeed", "failed"}
    assert 20 < kinds["failed"] < 90
    assert created(emu) == 500
    assert emu.stats.max_slots_in_use == 10
    assert batch.gate.max_in_use <= 10
    assert refusals(emu) == 0  # slots are held until the task ends, as Kling counts them
    assert {o.key for o in outcomes} == {o.key for o in batch.outcomes}
    report = batch.report()
    assert report.counts == dict(kinds)
    assert len(report.failures) == kinds["failed"]
    assert all(f["message"] for f in report.failures)
    progress = batch.progress
    assert (progress.total, progress.done, progress.waiting) == (500, 500, 0)


async def test_1303_storms_shrink_the_gate_and_lose_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """No slot hint: the gate learns the limit while another app holds slots too."""
    emu = await make_emulator(slot_limit=10, durations=Durations(queued=1, running=30))
    seed = emu.add_video()
    neighbour = make_client(emu)
    for _ in range(3):
        await neighbour.extend_video(seed.video_id)  # 3 of the 10 slots are taken by others
    kling = make_client(emu, max_polls_per_second=None)
    batch = kling.extend_many(
        [VideoExtendRequest(video_id=seed.video_id, prompt=f"n{i}") for i in range(120)],
        slots=None,
    )
    outcomes = await run_batch(clock, kling, batch)
    assert collections.Counter(o.outcome for o in outcomes) == {"succeed": 120}
    assert created(emu) == 123
    assert refusals(emu) > 0
    assert batch.gate.refusals == refusals(emu)
    assert emu.stats.max_slots_in_use == 10


async def test_lost_answers_in_a_batch_make_no_duplicates(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu, max_polls_per_second=None)
    emu.random_faults(
        0.3, kinds=(Fault.DROP_AFTER_CREATE, Fault.TRUNCATED_JSON), seed=9, route="create"
    )
    batch = kling.extend_many(
        [VideoExtendRequest(video_id=seed.video_id, prompt=f"p{i}") for i in range(60)], slots=20
    )
    outcomes = await run_batch(clock, kling, batch)
    assert collections.Counter(o.outcome for o in outcomes) == {"succeed": 60}
    assert created(emu) == 60
    assert requests_to(emu, "create") == 60
    assert len({o.task.task_id for o in outcomes if o.task}) == 60


async def test_ambiguous_creates_are_reported_then_recovered_on_resume(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    journal = tmp_path / "batch.sqlite"
    requests = [VideoExtendRequest(video_id=seed.video_id, prompt=f"a{i}") for i in range(10)]
    emu.fault(Fault.DROP_AFTER_CREATE, route="create", times=3)  # created, answers lost...
    emu.fault(Fault.SERVER_5000, route="get", times=3 * 6)  # ...and every look-up fails
    first = await run_batch(
        clock, make_client(emu), make_client(emu).extend_many(requests, journal=journal)
    )
    kinds = collections.Counter(o.outcome for o in first)
    assert kinds == {"succeed": 7, "ambiguous": 3}
    assert created(emu) == 10
    kling = make_client(emu)
    second = await run_batch(clock, kling, kling.extend_many(requests, journal=journal))
    assert collections.Counter(o.outcome for o in second) == {"succeed": 10}
    assert sum(o.from_journal for o in second) == 7
    assert created(emu) == 10  # the three were found, not sent again


async def test_balance_runs_out_mid_batch(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(balance_units=4.0, durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu)
    batch = kling.extend_many(
        [VideoExtendRequest(video_id=seed.video_id, prompt=f"b{i}") for i in range(10)], slots=2
    )
    outcomes = await run_batch(clock, kling, batch)
    kinds = collections.Counter(o.outcome for o in outcomes)
    assert kinds == {"succeed": 4, "not_sent": 6}
    assert created(emu) == 4
    # at most one refusal per slot (creates already in flight), then the gate is closed
    assert 5 <= requests_to(emu, "create") <= 4 + 2
    assert any(isinstance(o.error, InsufficientBalanceError) for o in outcomes)
    assert len(batch.report().not_sent) == 6


async def test_invalid_requests_are_rejected_and_the_rest_go_on(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    kling = make_client(emu)
    batch = kling.extend_many(
        [
            VideoExtendRequest(video_id=seed.video_id),
            {"video_id": "no-such-video"},
            VideoExtendRequest(video_id=seed.video_id, prompt="second"),
        ]
    )
    outcomes = {
        o.request.video_id + (o.request.prompt or ""): o
        for o in await run_batch(clock, kling, batch)
    }
    rejected = outcomes["no-such-video"]
    assert rejected.outcome == "rejected"
    assert rejected.error is not None and "video_id" in str(rejected.error)
    assert outcomes[seed.video_id].ok and outcomes[seed.video_id + "second"].ok
    assert batch.report().failures[0]["code"] == 1201


async def test_resume_finds_a_create_whose_answer_died_with_the_process(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    """The journal says 'sent' but has no task id: the task is looked up, not created again."""
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    request = VideoExtendRequest(video_id=seed.video_id, prompt="crash", external_task_id="job-7")
    path = tmp_path / "crash.sqlite"
    async with await Journal.open(path) as journal:
        body = {"kind": "video-extend", "body": unstructure_request(request)}
        await journal.record_intents([Intent("job-7", body)])
        await journal.record_sent("job-7", clock.time())
    await make_client(emu).create(request)  # what the dead process's POST did on the server
    kling = make_client(emu)
    outcomes = await run_batch(clock, kling, kling.extend_many([request], journal=path))
    assert [o.outcome for o in outcomes] == ["succeed"]
    assert created(emu) == 1


async def test_chain_extends_to_the_target(
    emu: KlingEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    seed = emu.add_video(duration=5.0)
    kling = make_client(emu, "relay")
    chain_task = asyncio.ensure_future(
        kling.extend_until(
            seed.video_id, 18, duration=5.0, parent_task_id=seed.task_id, prompt="on"
        )
    )
    await run_clock(clock, kling, chain_task.done, step=2.0)
    chain = await chain_task
    assert chain.video is not None and chain.video.duration is not None
    assert chain.video.duration >= 18
    assert 3 <= len(chain.steps) <= 4
    lineage = chain.lineage
    assert lineage[0][0] == seed.video_id
    for (_, child), (parent, _) in itertools.pairwise(lineage):
        assert child == parent
    for step, previous in zip(chain.steps[1:], chain.steps, strict=False):
        assert emu.tasks[step.task.task_id].body["task_id"] == previous.task.task_id


async def test_chain_refuses_a_target_over_three_minutes(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    kling = make_client(emu)
    with pytest.raises(RequestValidationError, match="three minutes"):
        await kling.extend_until("v", 181, duration=5)
    with pytest.raises(RequestValidationError, match="duration"):
        await kling.extend_until("v", 30)
    assert sum(emu.stats.requests.values()) == 0


async def test_leaving_a_batch_early_says_what_runs_on_and_what_may_exist(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=60))
    seeds = [emu.add_video() for _ in range(4)]
    emu.fault(Fault.SLOW, route="create", delay=5.0)  # the first create: made, answer held
    kling = make_client(emu)
    # Three slots: the fourth request waits for one when the loop is left.
    batch = kling.extend_many([VideoExtendRequest(video_id=s.video_id) for s in seeds], slots=3)
    stream = batch.__aiter__()
    first = asyncio.ensure_future(stream.__anext__())
    for _ in range(2000):  # real time: until all three exist and two answers are in
        if created(emu) == 3 and len(batch.running) == 2:
            break
        await asyncio.sleep(0.005)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await stream.aclose()  # type: ignore[attr-defined]

    by_external = {r.external_task_id: r for r in emu.tasks.values()}
    running = batch.running
    assert len(running) == 2
    assert set(running.values()) <= set(emu.tasks)
    (cut_off,) = batch.unsettled.values()  # its POST was sent, its answer never read
    assert cut_off.external_task_id in by_external  # so it can be found: the task exists
    assert len(set(batch.unsettled) | set(running)) == 3  # the fourth was never sent
    assert created(emu) == 3
    # Nothing of the batch runs on: no submit, producer or follower left behind.
    left = [t for t in asyncio.all_tasks() if not t.done() and "Batch." in repr(t.get_coro())]
    assert left == []
