"""The rules a shared batch keeps across its workers (issue #25, item 4): the coordinator's wait
for a slot is bounded on the client's clock, one worker reports each request's outcome, and on
a relay the turn of a parent video is the batch's, not one worker's."""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import pytest

from kling_async import KlingClient, ScaledClock, SlotTimeoutError, VideoExtendRequest
from kling_async.journal import ClaimLostError, Intent, SharedJournal
from kling_async.testing import Durations, KlingEmulator

LEASE = 0.3  # real seconds: the database's clock decides


def body(key: str) -> dict[str, object]:
    return {"kind": "video-extend", "body": {"video_id": "v", "prompt": key}}


def die(journal: SharedJournal) -> None:
    """Stop the heartbeat, as a pause of the process (or an outage) would."""
    assert journal._heartbeat is not None
    journal._heartbeat.cancel()


async def test_a_shared_slot_wait_is_bounded_on_the_clients_clock(pg_dsn: str) -> None:
    """slot_timeout is in the client's seconds: 60 of them on a clock 1000 times fast are
    60 ms, whether the gate or the coordinator does the waiting (it waited 60 real s)."""
    clock = ScaledClock(1000.0)
    async with KlingEmulator(clock=clock) as emu:
        kwargs = {**emu.client_kwargs(), "slots": 1, "clock": clock}
        a = KlingClient(**kwargs, coordinator=pg_dsn)
        b = KlingClient(**kwargs, coordinator=pg_dsn)
        async with a, b:
            held = await a.gate.acquire()
            started = time.monotonic()
            with pytest.raises(SlotTimeoutError):
                await asyncio.wait_for(b.gate.acquire(timeout=60.0), 10.0)
            assert time.monotonic() - started < 5.0
            held.release()


async def test_only_the_holder_of_a_request_reports_its_outcome(pg_dsn: str) -> None:
    """A worker whose lease ran out while its task ran (an outage, a long pause) and whose
    request was taken over is refused the outcome: the taker reports it, so a sum of what the
    workers yield counts it once."""
    async with (
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as one,
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as two,
    ):
        await one.record_intents([Intent("a", body("a")), Intent("b", body("b"))])
        await one.record_sent("a", 1.0)
        await one.record_created("a", "t-a", 1)
        await one.record_outcome("b", "succeed", {})  # still its own: recorded
        die(one)
        await asyncio.sleep(LEASE * 2)
        assert [e.key for e in await two.claim_orphans()] == ["a"]
        with pytest.raises(ClaimLostError, match="reported there"):
            await one.record_outcome("a", "succeed", {})
        await two.record_outcome("a", "succeed", {})
        await two.record_outcome("a", "succeed", {})  # the same again (a repeat): a no-op
        outcomes = {e.key: e.outcome for e in await two.entries()}
    assert outcomes == {"a": "succeed", "b": "succeed"}


async def test_a_parent_videos_turn_is_held_across_the_workers_of_a_batch(pg_dsn: str) -> None:
    async with (
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as one,
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as two,
    ):
        entered = asyncio.Event()

        async def take(journal: SharedJournal, parent: str) -> None:
            async with journal.turn(parent):
                entered.set()

        async with one.turn("v1"):
            waiting = asyncio.ensure_future(take(two, "v1"))
            await asyncio.wait_for(take(two, "v2"), 5.0)  # another parent: no wait
            entered.clear()
            await asyncio.sleep(LEASE * 2)  # the holder is alive: the turn stays its own
            assert not entered.is_set()
        await asyncio.wait_for(waiting, 5.0)  # handed back: taken at once

        # A worker that stops renewing its lease (it died) gives its turn back with it.
        async with contextlib.AsyncExitStack() as held:
            await held.enter_async_context(one.turn("v3"))
            die(one)
            await asyncio.wait_for(take(two, "v3"), 5.0)


async def test_a_relay_batch_over_a_shared_journal_hands_every_turn_back(pg_dsn: str) -> None:
    clock = ScaledClock(200.0)
    async with KlingEmulator(clock=clock, durations=Durations(1, 10)) as emu:
        seeds = [emu.add_video() for _ in range(2)]
        requests = [
            VideoExtendRequest(
                video_id=seeds[i % 2].video_id, parent_task_id=seeds[i % 2].task_id, prompt=f"p{i}"
            )
            for i in range(6)
        ]
        async with (
            KlingClient(**emu.client_kwargs("relay"), clock=clock) as kling,
            await SharedJournal.open(pg_dsn, batch="relay") as journal,
        ):
            ends = [o.outcome async for o in kling.extend_many(requests, journal=journal)]
    assert ends == ["succeed"] * 6
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kling_batch_turn") == 0
    finally:
        await conn.close()
