"""Relay lost answers with several creates of one parent video in flight: each create gets
its own task, no task is claimed by two requests, and doubt is never resolved by a guess."""

from __future__ import annotations

import asyncio
import collections

import pytest

from kling_async import AmbiguousSubmitError, FakeClock, Task, VideoExtendRequest
from kling_async.testing import Durations, Fault

from .conftest import MakeClient, MakeEmulator, created, requests_to
from .watching import run_batch


@pytest.mark.parametrize("list_route", [True, False])
async def test_concurrent_creates_of_one_parent_each_find_their_own_task(
    make_emulator: MakeEmulator, make_client: MakeClient, list_route: bool
) -> None:
    emu = await make_emulator(relay_list_route=list_route)
    seeds = [emu.add_video() for _ in range(2)]
    kling = make_client(emu, "relay")
    emu.random_faults(
        0.4,
        kinds=(Fault.DROP_AFTER_CREATE, Fault.GATEWAY_502_AFTER_CREATE, Fault.SLOW),
        seed=3,
        route="create",
        delay=0.01,
    )

    async def extend(i: int) -> Task | AmbiguousSubmitError:
        seed = seeds[i % 2]
        try:
            return await kling.extend_video(
                seed.video_id, parent_task_id=seed.task_id, prompt=f"c{i}"
            )
        except AmbiguousSubmitError as exc:
            return exc

    results = await asyncio.gather(*(extend(i) for i in range(24)))
    assert created(emu) == requests_to(emu, "create") == 24  # nothing sent twice
    tasks = [r for r in results if isinstance(r, Task)]
    lost = [r for r in results if isinstance(r, AmbiguousSubmitError)]
    for i, result in enumerate(results):
        if isinstance(result, Task):  # its own task, by the prompt the server kept
            assert emu.tasks[result.task_id].body["prompt"] == f"c{i}"
    assert len({t.task_id for t in tasks}) == len(tasks)
    if list_route:
        assert lost == []  # one create of a parent in flight at a time: each scan is sure
    else:
        assert lost and all(e.lookup_error is not None for e in lost)


async def test_a_create_in_doubt_stops_scans_of_its_parent_from_guessing(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    seed = emu.add_video()
    # Slots known: the first create's slot stays held while its task may exist.
    kling = make_client(emu, "relay", slots=4)
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    emu.fault(Fault.GATEWAY_HTML_502, route="list", times=None)  # its look-up fails
    with pytest.raises(AmbiguousSubmitError) as first:
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id, prompt="a")
    emu.clear_faults()
    (made,) = [t for t in emu.tasks.values() if t.kind == "video-extend"]
    emu.fault(Fault.SERVER_5001, route="create")  # refused before handling: nothing made
    with pytest.raises(AmbiguousSubmitError) as second:
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id, prompt="b")
    # The one unknown task of the video is the first create's, not the second's: with the
    # first in doubt, the scan names it as a candidate and claims nothing.
    assert second.value.candidates == (made.task_id,)
    assert "candidates" in str(second.value)
    assert created(emu) == 1 and requests_to(emu, "create") == 2
    # Two creates in doubt, one task: looking again still does not guess.
    assert await kling.find_submitted(first.value) is None


async def test_relay_creates_of_one_parent_get_past_1303_while_siblings_wait_their_turn(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    # Two account slots, one parent video: siblings wait for the turn holding slots of the
    # client's gate; the one refused in the turn must still get a slot when a task ends (it
    # waits for it outside the turn).
    emu = await make_emulator(durations=Durations(queued=1, running=10), slot_limit=2)
    seed = emu.add_video()
    kling = make_client(emu, "relay", max_polls_per_second=None)
    requests = [
        VideoExtendRequest(video_id=seed.video_id, parent_task_id=seed.task_id, prompt=f"s{i}")
        for i in range(8)
    ]
    outcomes = await run_batch(clock, kling, kling.extend_many(requests))
    assert collections.Counter(o.outcome for o in outcomes) == {"succeed": 8}
    assert created(emu) == 8
    assert emu.stats.requests[("POST", "create", 429)] > 0  # 1303s were met
