"""The fault matrix at scale, on a fake clock: every fault a create and a poll can meet, at
once, over 1,000 official and 300 relay creates (10 parent videos). Counted per request:
tasks beyond the first, creates re-sent after their task existed, tasks the caller cannot
reach, tasks reported for another request — all must be 0."""

from __future__ import annotations

import collections

import pytest

from kling_async import FakeClock, KlingClient, Timeouts, VideoExtendRequest
from kling_async.testing import Durations, Fault, KlingEmulator

from .conftest import MakeClient, MakeEmulator
from .money import ledger
from .watching import run_batch

FAULTS = (
    Fault.DROP_AFTER_CREATE,  # the answer is lost after the task was made
    Fault.GATEWAY_502_AFTER_CREATE,  # a 5xx page hides a made task
    Fault.SERVER_5001,  # a 503 before handling: nothing made
    Fault.SLOW,  # the answer comes after the create's read time-out
    Fault.GATEWAY_HTML_502,  # faulty GETs (and creates refused by a gateway)
    Fault.TRUNCATED_JSON,
    Fault.DROP_BEFORE,
)


def impatient_client(make_client: MakeClient, emu: KlingEmulator, flavour: str) -> KlingClient:
    """A client polling without a budget, whose creates time out after 20 ms (so a SLOW
    answer arrives after its time-out)."""
    return make_client(
        emu,
        flavour,
        max_polls_per_second=None,
        max_polls_in_flight=100,
        create_timeouts=Timeouts(connect=5, read=0.02, total=5),
    )


@pytest.mark.parametrize(
    ("flavour", "n", "parents", "list_route"),
    [("jwt", 1000, 10, True), ("relay", 300, 10, True), ("relay", 300, 5, False)],
)
async def test_fault_matrix(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    clock: FakeClock,
    flavour: str,
    n: int,
    parents: int,
    list_route: bool,
) -> None:
    emu = await make_emulator(
        durations=Durations(queued=1, running=8), slot_limit=60, relay_list_route=list_route
    )
    seeds = [emu.add_video() for _ in range(parents)]
    emu.random_faults(0.15, kinds=FAULTS, seed=12, route="any", delay=0.05)
    kling = impatient_client(make_client, emu, flavour)
    # Grouped by video, as people write request files; the slots are more than the account
    # has (60), so 1303 answers come too.
    requests = [
        VideoExtendRequest(
            video_id=seeds[i * parents // n].video_id,
            parent_task_id=seeds[i * parents // n].task_id,
            prompt=f"m{i}",
        )
        for i in range(n)
    ]
    batch = kling.extend_many(requests, slots=80)
    outcomes = await run_batch(clock, kling, batch, step=2.0)
    assert len(outcomes) == n and len({o.key for o in outcomes}) == n
    counts = collections.Counter(o.outcome for o in outcomes)
    assert counts["succeed"] + counts["failed"] + counts["ambiguous"] == n, counts
    if list_route:  # (without one, creates in doubt hold their slots: fewer are in flight)
        assert emu.stats.requests[("POST", "create", 429)] > 0  # 1303 refusals were met
    book = ledger(emu, outcomes, running=batch.running.values())
    if list_route:
        assert book.clean, (book, counts)
        assert counts["succeed"] > n * 0.8
    else:
        # A relay with no list route cannot see a task whose answer was lost: each such task
        # is behind an ambiguous outcome of its own request, and none is paid twice.
        assert (book.duplicated, book.resent, book.misreported) == (0, 0, 0), book
        assert 0 < book.unreported <= counts["ambiguous"]


# What an independent stand-in server met us with: the faults above, the 503/5001 before
# anything is created among them, and 1303s while the stated slots are free.
PACE_FAULTS = (*FAULTS, Fault.SERVER_5000, Fault.SPURIOUS_1303)
GET_FAULTS = (Fault.GATEWAY_HTML_502, Fault.SERVER_5000, Fault.TRUNCATED_JSON, Fault.DROP_BEFORE)


@pytest.mark.parametrize(
    ("flavour", "n", "reading"),
    [("jwt", 1000, "refuse"), ("jwt", 400, "accept"), ("relay", 300, "refuse")],
)
async def test_under_faults_a_batch_on_its_stated_slots_keeps_its_pace(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    clock: FakeClock,
    flavour: str,
    n: int,
    reading: str,
) -> None:
    """20 slots stated and real, 18 % of creates and 5 % of GETs faulty. Nothing is paid
    twice or lost; on the official API nothing ends ``ambiguous`` (a look-up's "not found"
    proves a create absent, and it is sent again); and the batch never stalls: it ends within
    4x of what 20 slots allow (real-time faults on a fake clock: 1.1-3x seen), where slots
    kept for the prior's 640 s, or a limit shrunk to what one task holds, made it run for
    thousands of seconds."""
    emu = await make_emulator(
        durations=Durations(queued=1, running=8), slot_limit=20, duplicate_external_id=reading
    )
    parents = 10
    seeds = [emu.add_video() for _ in range(parents)]
    emu.random_faults(0.18, kinds=PACE_FAULTS, seed=25, route="create", delay=0.05)
    emu.random_faults(0.05, kinds=GET_FAULTS, seed=26, route="get")
    kling = impatient_client(make_client, emu, flavour)
    requests = [
        VideoExtendRequest(
            video_id=seeds[i % parents].video_id,
            parent_task_id=seeds[i % parents].task_id,
            prompt=f"p{i}",
        )
        for i in range(n)
    ]
    batch = kling.extend_many(requests, slots=20)
    started = clock.monotonic()
    outcomes = await run_batch(clock, kling, batch, step=2.0)
    took = clock.monotonic() - started
    assert len(outcomes) == n and len({o.key for o in outcomes}) == n
    counts = collections.Counter(o.outcome for o in outcomes)
    book = ledger(emu, outcomes, running=batch.running.values())
    assert (book.duplicated, book.resent, book.misreported) == (0, 0, 0), (book, counts)
    if flavour == "jwt":
        assert book.clean, (book, counts)
        assert counts["ambiguous"] == 0, counts
        assert counts["succeed"] == n, counts
    bound = n / 20 * 9.0  # 20 at a time, tasks of 1 s queued + 8 s running
    assert took <= 4 * bound + 60, (took, bound, counts)
