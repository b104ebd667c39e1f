"""The rule: a create is sent again only when it provably did not happen.

A look-up that itself fails is no answer (the create stays ambiguous, and is journalled so);
on a relay nothing proves a create absent, so an ambiguous relay create is never re-sent
unless the caller opts in with ``resend_ambiguous=True``.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from kling_async import AmbiguousSubmitError, FakeClock, VideoExtendRequest
from kling_async.journal import Journal
from kling_async.testing import Durations, Fault

from .conftest import MakeClient, MakeEmulator, created, requests_to
from .watching import run_batch


@pytest.mark.parametrize("flavour", ["jwt", "relay"])
async def test_a_failing_look_up_leaves_the_create_ambiguous(
    make_emulator: MakeEmulator, make_client: MakeClient, flavour: str
) -> None:
    emu = await make_emulator()
    seed = emu.add_video()
    kling = make_client(emu, flavour)
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    route = "get" if flavour == "jwt" else "list"
    emu.fault(Fault.GATEWAY_HTML_502, route=route, times=None)  # every look-up: a 502 page
    with pytest.raises(AmbiguousSubmitError) as info:
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    assert info.value.lookup_error is not None
    assert created(emu) == 1 and requests_to(emu, "create") == 1
    emu.clear_faults()
    found = await kling.find_submitted(info.value)  # the gateway is back: it is found
    assert found is not None and found.task_id in emu.tasks


async def test_a_batch_journals_a_failed_look_up_as_ambiguous_and_looks_again_on_resume(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    journal = tmp_path / "b.sqlite"
    requests = [VideoExtendRequest(video_id=seed.video_id, prompt=f"p{i}") for i in range(4)]
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    emu.fault(Fault.GATEWAY_HTML_502, route="get", times=200)  # look-ups fail for a while
    kling = make_client(emu, max_polls_per_second=None)
    first = await run_batch(clock, kling, kling.extend_many(requests, journal=journal))
    counts = collections.Counter(o.outcome for o in first)
    assert counts["ambiguous"] == 1 and "rejected" not in counts
    assert [e.outcome for e in Journal.read(journal)].count("ambiguous") == 1
    emu.clear_faults()
    again = make_client(emu, max_polls_per_second=None)
    second = await run_batch(clock, again, again.extend_many(requests, journal=journal))
    assert collections.Counter(o.outcome for o in second) == {"succeed": 4}
    assert created(emu) == 4  # found on resume, not sent again
    assert requests_to(emu, "create") == 4


@pytest.mark.parametrize("list_route", [True, False])
async def test_a_relay_never_resends_an_ambiguous_create_unless_told(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    clock: FakeClock,
    tmp_path: Path,
    list_route: bool,
) -> None:
    emu = await make_emulator(
        durations=Durations(queued=1, running=20), relay_list_route=list_route
    )
    seed = emu.add_video()
    journal = tmp_path / "relay.sqlite"
    requests = [
        VideoExtendRequest(video_id=seed.video_id, parent_task_id=seed.task_id, prompt=f"r{i}")
        for i in range(3)
    ]
    emu.fault(Fault.SERVER_5001, route="create")  # refused before handling: nothing exists...
    emu.fault(Fault.GATEWAY_HTML_502, route="list", times=None)  # ...but nothing can tell
    kling = make_client(emu, "relay", max_polls_per_second=None)
    first = await run_batch(clock, kling, kling.extend_many(requests, journal=journal))
    assert collections.Counter(o.outcome for o in first) == {"succeed": 2, "ambiguous": 1}
    emu.clear_faults()
    again = make_client(emu, "relay", max_polls_per_second=None)
    resumed = again.extend_many(requests, journal=journal)
    second = await run_batch(clock, again, resumed)
    (row,) = resumed.report().ambiguous  # what a person needs to settle it
    assert row["video_id"] == seed.video_id and row["parent_task_id"] == seed.task_id
    assert row["sent_at"] is not None and row["candidates"] == []
    # A relay scan that finds no candidate proves nothing: still ambiguous, never re-sent.
    assert collections.Counter(o.outcome for o in second) == {"succeed": 2, "ambiguous": 1}
    assert requests_to(emu, "create") == 3
    (ambiguous,) = [o for o in second if o.outcome == "ambiguous"]
    assert isinstance(ambiguous.error, AmbiguousSubmitError)
    assert ambiguous.error.video_id == seed.video_id
    assert ambiguous.error.parent_task_id == seed.task_id
    assert ambiguous.error.request is not None
    detail = {e.key: e.detail for e in Journal.read(journal)}[ambiguous.key]
    assert detail is not None and detail["video_id"] == seed.video_id and "sent_at" in detail
    opted = make_client(emu, "relay", max_polls_per_second=None)
    third = await run_batch(
        clock, opted, opted.extend_many(requests, journal=journal, resend_ambiguous=True)
    )
    assert collections.Counter(o.outcome for o in third) == {"succeed": 3}
    assert requests_to(emu, "create") == 4 and created(emu) == 3


async def test_an_official_resume_resends_only_after_an_authoritative_not_found(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    journal = tmp_path / "official.sqlite"
    requests = [VideoExtendRequest(video_id=seed.video_id, prompt=f"o{i}") for i in range(2)]
    emu.fault(Fault.SERVER_5001, route="create")  # nothing created...
    emu.fault(Fault.SERVER_5000, route="get", times=6)  # ...and looking it up fails: no proof
    kling = make_client(emu, max_polls_per_second=None)
    first = await run_batch(clock, kling, kling.extend_many(requests, journal=journal))
    assert collections.Counter(o.outcome for o in first) == {"succeed": 1, "ambiguous": 1}
    assert requests_to(emu, "create") == 2
    again = make_client(emu, max_polls_per_second=None)
    second = await run_batch(clock, again, again.extend_many(requests, journal=journal))
    assert collections.Counter(o.outcome for o in second) == {"succeed": 2}
    assert created(emu) == 2 and requests_to(emu, "create") == 3


async def test_an_official_batch_resends_a_create_proven_absent_in_the_same_run(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    """503/5001 before anything is created: the look-up says "not found", which proves it,
    so the batch sends it again at once: no ``ambiguous`` outcome, no slot kept on a guess."""
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    seed = emu.add_video()
    requests = [VideoExtendRequest(video_id=seed.video_id, prompt=f"o{i}") for i in range(6)]
    emu.fault(Fault.SERVER_5001, route="create", times=3)
    kling = make_client(emu, max_polls_per_second=None)
    batch = kling.extend_many(requests, journal=tmp_path / "official.sqlite", slots=2)
    outcomes = await run_batch(clock, kling, batch)
    assert collections.Counter(o.outcome for o in outcomes) == {"succeed": 6}
    assert created(emu) == 6 and requests_to(emu, "create") == 9
    assert (kling.gate.in_use, len(batch.unsettled)) == (0, 0)


async def test_a_relay_without_a_list_route_reports_lost_answers_as_ambiguous(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(relay_list_route=False)
    seed = emu.add_video()
    kling = make_client(emu, "relay")
    emu.fault(Fault.GATEWAY_502_AFTER_CREATE, route="create")
    with pytest.raises(AmbiguousSubmitError) as info:
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    assert created(emu) == 1 and requests_to(emu, "create") == 1
    assert info.value.lookup_error is not None  # the list answered 404/1203
    assert requests_to(emu, "list") >= 1
