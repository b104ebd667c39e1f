"""Cancelling the consumer of ``extend_many`` at any moment loses no task: each task the
server created is in exactly one of the outcomes delivered, ``batch.undelivered``,
``batch.running`` or ``batch.unsettled`` (and journalled batches included)."""

from __future__ import annotations

import asyncio
import collections
import random
from pathlib import Path

from kling_async import FakeClock, Timeouts, VideoExtendRequest
from kling_async.batch import Outcome
from kling_async.testing import Durations, Fault

from .conftest import MakeClient, MakeEmulator
from .watching import settle

TRIALS = 36


async def test_cancelling_at_random_moments_leaves_no_task_unaccounted(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=3))
    seeds = [emu.add_video() for _ in range(3)]
    rng = random.Random(12)
    # Answers that come late (some past the read time-out) or never: creates are cut off at
    # every stage — before the POST, awaiting the answer, looking it up, journalling its id.
    emu.random_faults(
        0.5, kinds=(Fault.SLOW, Fault.DROP_AFTER_CREATE), seed=5, route="create", delay=0.004
    )
    seen_states: collections.Counter[str] = collections.Counter()
    for trial in range(TRIALS):
        kling = make_client(
            emu,
            max_polls_per_second=None,
            create_timeouts=Timeouts(connect=5, read=0.003, total=5),
        )
        requests = [
            VideoExtendRequest(video_id=seeds[i % 3].video_id, prompt=f"t{trial}-{i}")
            for i in range(10)
        ]
        batch = kling.extend_many(
            requests, journal=tmp_path / f"t{trial}.sqlite" if trial % 2 else None, slots=6
        )
        delivered: list[Outcome] = []
        stream = batch.__aiter__()

        async def consume(stream=stream, delivered=delivered) -> None:  # type: ignore[no-untyped-def]
            while True:
                delivered.append(await stream.__anext__())
                await asyncio.sleep(0.001)  # the caller's own work: outcomes pile up meanwhile

        consumer = asyncio.ensure_future(consume())
        asyncio.get_running_loop().call_later(rng.uniform(0.0, 0.04), consumer.cancel)
        while not consumer.done():
            await settle(kling)
            await clock.advance(rng.choice((0.0, 0.5, 1.0)))
            await asyncio.sleep(0)
        await asyncio.gather(consumer, return_exceptions=True)
        await stream.aclose()  # type: ignore[attr-defined]

        ours = {
            tid: rec
            for tid, rec in emu.tasks.items()
            if str((rec.body or {}).get("prompt", "")).startswith(f"t{trial}-")
        }
        by_external = {rec.external_task_id: tid for tid, rec in ours.items()}
        places: collections.Counter[str] = collections.Counter()
        for outcome in delivered + batch.undelivered:
            if outcome.task is not None:
                places[outcome.task.task_id] += 1
        for task_id in batch.running.values():
            places[task_id] += 1
        for request in batch.unsettled.values():
            if request.external_task_id in by_external:
                places[by_external[request.external_task_id]] += 1
        for task_id in ours:
            assert places[task_id] == 1, (trial, task_id, places[task_id])
        seen_states["undelivered"] += bool(batch.undelivered)
        seen_states["running"] += bool(batch.running)
        seen_states["unsettled"] += bool(batch.unsettled)
        seen_states["delivered"] += bool(delivered)
    # The random moments did land in every state across the trials.
    assert all(seen_states[s] > 0 for s in seen_states), seen_states
