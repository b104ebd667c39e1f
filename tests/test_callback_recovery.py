"""Callback-assisted recovery (issue #12, item 3): on a relay with no list route, a create
whose answer was lost is settled by the callback its per-create URL brings back — the right
task for the right request — and a forged callback settles nothing."""

from __future__ import annotations

import asyncio
import collections
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kling_async import FakeClock, KlingClient, VideoExtendRequest
from kling_async.batch import Batch, Outcome
from kling_async.journal import Journal
from kling_async.testing import Durations, Fault, KlingEmulator
from kling_async.webhooks import CallbackReceiver, aiohttp_handler

from .conftest import MakeClient, MakeEmulator, Serve, created, requests_to
from .money import Ledger, ledger
from .watching import run_clock, settle

Mount = Callable[[CallbackReceiver], Awaitable[str]]
SECRET = "whsec_a2xpbmctYXN5bmMtY2FsbGJhY2stcmVjb3Zlcnl0ZXN0"


@pytest.fixture
async def mount(serve: Serve) -> Mount:
    """Mount a receiver at ``/kling-callback?site=a`` on loopback; its URL (with a query the
    batch must keep)."""

    async def start(receiver: CallbackReceiver) -> str:
        return await serve(aiohttp_handler(receiver)) + "?site=a"

    return start


async def run_batch(
    clock: FakeClock, kling: KlingClient, emu: KlingEmulator, batch: Batch
) -> list[Outcome]:
    """Consume ``batch`` on ``clock``, stepping it only once the callbacks due are delivered
    (their delivery takes real time; the fake clock must not run ahead of it)."""
    outcomes: list[Outcome] = []

    async def consume() -> None:
        async for outcome in batch:
            outcomes.append(outcome)

    consumer = asyncio.ensure_future(consume())
    for _ in range(100_000):
        if consumer.done():
            break
        await settle(kling)
        await emu.flush_callbacks()
        await clock.advance(1.0)
        await asyncio.sleep(0)
    await consumer
    return outcomes


async def _relay_batch(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    mount: Mount,
    clock: FakeClock,
    *,
    callbacks: bool,
    signed: bool,
) -> tuple[KlingEmulator, KlingClient, list[Any], Any]:
    emu = await make_emulator(
        relay_list_route=False,
        durations=Durations(queued=2, running=20),
        webhook_secret=SECRET if signed else None,
    )
    seeds = [emu.add_video() for _ in range(3)]
    kling = make_client(emu, "relay", max_polls_per_second=None)
    receiver = CallbackReceiver(client=kling, secret=SECRET if signed else None)
    url = await mount(receiver)
    requests = [
        VideoExtendRequest(
            video_id=seeds[i % 3].video_id,
            parent_task_id=seeds[i % 3].task_id,
            prompt=f"p{i}",
            callback_url=url,
        )
        for i in range(24)
    ]
    emu.random_faults(
        0.3, kinds=(Fault.DROP_AFTER_CREATE, Fault.GATEWAY_502_AFTER_CREATE), seed=5, route="create"
    )
    batch = kling.extend_many(requests, callback_receiver=receiver if callbacks else None)
    outcomes = await run_batch(clock, kling, emu, batch)
    return emu, kling, outcomes, batch


@pytest.mark.parametrize("signed", [True, False])
async def test_callbacks_settle_every_lost_relay_create_for_its_own_request(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    mount: Mount,
    clock: FakeClock,
    signed: bool,
) -> None:
    emu, _, outcomes, _ = await _relay_batch(
        make_emulator, make_client, mount, clock, callbacks=True, signed=signed
    )
    lost = sum(1 for _, task_id in emu.stats.creates if task_id is not None) - 24
    assert lost == 0  # nothing was sent twice
    assert requests_to(emu, "create", "POST") == created(emu) == 24
    assert collections.Counter(o.outcome for o in outcomes) == {"succeed": 24}
    assert ledger(emu, outcomes).clean  # each task reported, for the request that paid for it
    # Answers were lost, and the relay has no list: only the callbacks could tell.
    assert emu.stats.requests[("GET", "list", 404)] > 0
    tokens = set()
    for url in {rec.url for rec in emu.callbacks}:  # the user's query is kept, one token added
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert query["site"] == ["a"] and len(query["ka_ref"]) == 1
        tokens.add(query["ka_ref"][0])
    assert len(tokens) == 24  # one per create, and no request's key (it may be sensitive)
    assert not tokens & {o.key for o in outcomes} and not tokens & {o.key[:16] for o in outcomes}


async def test_without_the_receiver_the_same_lost_creates_stay_ambiguous(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    mount: Mount,
    clock: FakeClock,
) -> None:
    emu, _, outcomes, _ = await _relay_batch(
        make_emulator, make_client, mount, clock, callbacks=False, signed=True
    )
    counts = collections.Counter(o.outcome for o in outcomes)
    assert counts["ambiguous"] > 0 and counts["ambiguous"] + counts["succeed"] == 24
    assert created(emu) == 24  # ambiguous, but never re-sent
    # Without a list route nothing else names their tasks: each ambiguous one is unreported.
    assert ledger(emu, outcomes) == Ledger(0, 0, counts["ambiguous"], 0)


async def test_a_forged_unsigned_callback_with_a_token_settles_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, serve: Serve
) -> None:
    # The server's own callbacks go to a sink: only the forger reaches the receiver, with the
    # token of a lost create and task ids that are not its task's.
    emu = await make_emulator(relay_list_route=False, durations=Durations(queued=2, running=20))
    seed, other = emu.add_video(), emu.add_video()
    kling = make_client(emu, "relay", max_polls_per_second=None)
    receiver = CallbackReceiver(client=kling)
    hits = 0

    async def swallow(request: web.Request) -> web.Response:  # answers 200, passes none on
        nonlocal hits
        hits += 1
        return web.Response(text="{}")

    sink = await serve(swallow)
    lost = VideoExtendRequest(
        video_id=seed.video_id, parent_task_id=seed.task_id, prompt="x", callback_url=sink
    )
    decoy = VideoExtendRequest(video_id=other.video_id, parent_task_id=other.task_id, prompt="d")
    # A task of the same parent video made by someone else well before the batch: not ours,
    # but older than the lost create.
    older = await make_client(emu, "relay").extend_video(
        seed.video_id, parent_task_id=seed.task_id, prompt="o"
    )
    await clock.advance(600)
    # A task of the same parent video, already ours: no callback may hand it to another.
    earlier = await kling.extend_video(seed.video_id, parent_task_id=seed.task_id, prompt="e")
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")  # the next create's answer is lost
    batch = kling.extend_many([lost, decoy], slots=4, callback_receiver=receiver, callback_wait=60)
    outcomes: list[Any] = []

    async def consume() -> None:
        async for outcome in batch:
            outcomes.append(outcome)

    consumer = asyncio.ensure_future(consume())
    # The lost create waits for a callback (unsettled) while the decoy's task runs.
    await run_clock(clock, kling, lambda: len(batch.running) == len(batch.unsettled) == 1)
    (record,) = [r for r in emu.tasks.values() if r.callback_url]
    query = urllib.parse.urlsplit(record.callback_url or "").query
    (decoy_id,) = batch.running.values()
    # Each a copy of the lost task's own callback (right parent, right time) under another
    # id: someone else's older one, ours already (same video, and another), a made-up one,
    # and the seed's (no extension of that video).
    genuine = emu.task_json(record.task_id)
    for task_id in (older.task_id, earlier.task_id, decoy_id, "999999999", seed.task_id):
        body = json.dumps({**genuine, "task_id": task_id, "task_status": "succeed"})
        assert await receiver.receive({}, body.encode(), query=query) is not None
    await run_clock(clock, kling, consumer.done)
    await consumer
    by_prompt = {o.request.prompt: o for o in outcomes}
    assert by_prompt["x"].outcome == "ambiguous"  # nothing forged was believed
    assert by_prompt["d"].outcome == "succeed" and by_prompt["d"].task.task_id == decoy_id
    assert hits > 0  # the genuine callbacks existed, they just never reached the batch
    assert requests_to(emu, "create") == 4


async def test_a_resumed_batch_settles_journalled_ambiguous_creates_from_later_callbacks(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    mount: Mount,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    # Long queues: the fake clock steps on while the journal writes in its thread.
    emu = await make_emulator(relay_list_route=False, durations=Durations(queued=3_000, running=60))
    seeds = [emu.add_video() for _ in range(2)]
    kling = make_client(emu, "relay", max_polls_per_second=None)
    receiver = CallbackReceiver(client=kling)
    url = await mount(receiver)
    requests = [
        VideoExtendRequest(
            video_id=seeds[i % 2].video_id,
            parent_task_id=seeds[i % 2].task_id,
            prompt=f"r{i}",
            callback_url=url,
        )
        for i in range(4)
    ]
    journal = tmp_path / "cb.sqlite"
    emu.fault(Fault.DROP_AFTER_CREATE, route="create", times=4)  # every answer is lost
    # A first run that hears no callbacks (its receiver is not the one mounted) and does not
    # wait: every create ends ambiguous at once (slots known: none waits for another's slot),
    # journalled with its tagged URL.
    deaf = CallbackReceiver(client=kling)
    first = kling.extend_many(
        requests, journal=journal, slots=4, callback_receiver=deaf, callback_wait=0
    )
    before = await run_batch(clock, kling, emu, first)
    assert clock.monotonic() < 3_000  # before any task's next status
    assert collections.Counter(o.outcome for o in before) == {"ambiguous": 4}
    async with await Journal.open(journal) as saved:
        sent = {e.request["body"]["callback_url"] for e in await saved.entries()}
    assert sent == {r.callback_url for r in emu.tasks.values() if r.kind == "video-extend"}
    assert len(sent) == 4
    # Resumed: the look-ups still cannot run; each task's next status callback settles it.
    again = kling.extend_many(
        requests, journal=journal, callback_receiver=receiver, callback_wait=5_000
    )
    after = await run_batch(clock, kling, emu, again)
    assert collections.Counter(o.outcome for o in after) == {"succeed": 4}
    assert created(emu) == 4 and ledger(emu, after).clean
    # And journalled as created, then finished: a third run only reports them.
    third = await run_batch(clock, kling, emu, kling.extend_many(requests, journal=journal))
    assert [(o.outcome, o.from_journal) for o in third] == [("succeed", True)] * 4
    assert {o.task.task_id for o in third if o.task} == {o.task.task_id for o in after if o.task}
    assert requests_to(emu, "create") == 4
