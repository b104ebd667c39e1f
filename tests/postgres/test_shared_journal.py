"""The shared journal's claims and leases, two workers' handles on one batch of a real
PostgreSQL: one holder at a time, take-over after a lease, a fenced send, and failures."""

from __future__ import annotations

import asyncio
import collections
import contextlib

import asyncpg
import pytest

from kling_async import FakeClock, KlingClient, RetryPolicy, VideoExtendRequest
from kling_async.journal import ClaimLostError, Intent, JournalError, SharedJournal
from kling_async.testing import Durations, KlingEmulator

from ..watching import settle

LEASE = 0.3  # real seconds: the database's clock decides


def body(key: str) -> dict[str, object]:
    return {"kind": "video-extend", "body": {"video_id": "v", "prompt": key}}


def die(journal: SharedJournal) -> None:
    """Stop the heartbeat, as kill -9 would (the handle stays usable, for the fence tests)."""
    assert journal._heartbeat is not None
    journal._heartbeat.cancel()


async def test_a_request_has_one_holder_at_a_time(pg_dsn: str) -> None:
    async with (
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as one,
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as two,
    ):
        assert one.worker != two.worker
        first = await one.claim("a", body("a"))
        assert first is not None and first.request == body("a") and first.state == "intent"
        assert await two.claim("a", body("other")) is None  # held by a live worker
        assert await one.claim("a", body("a")) is not None  # its holder may claim it again
        assert await two.held_elsewhere() == 1 and await one.held_elsewhere() == 0
        await asyncio.sleep(LEASE * 2)  # the heartbeat keeps the lease alive
        assert await two.claim("a", body("a")) is None
        # A finished request is returned to anyone, and claimed by nobody.
        await one.record_outcome("a", "succeed", {"video_id": "c"})
        done = await two.claim("a", body("a"))
        assert done is not None and done.outcome == "succeed"
        assert await one.held_elsewhere() == 0 == await two.held_elsewhere()


async def test_a_dead_workers_requests_are_taken_over_after_its_lease(pg_dsn: str) -> None:
    async with (
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as dead,
        await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as alive,
    ):
        await dead.record_intents([Intent("a", body("a")), Intent("b", body("b"))])
        await dead.record_sent("a", 5.0)
        await dead.record_created("b", "t-b", 1)
        die(dead)
        assert await alive.claim_orphans() == []  # the lease still runs
        await asyncio.sleep(LEASE + 0.1)
        taken = await alive.claim_orphans()
        assert [(e.key, e.sent_at, e.task_id) for e in taken] == [
            ("a", 5.0, None),
            ("b", None, "t-b"),
        ]
        assert await alive.claim_orphans() == []  # its own now
        # The dead worker's send is fenced: it learns it must not send.
        with pytest.raises(ClaimLostError, match="held by worker"):
            await dead.record_sent("a", 6.0)
        assert (await alive.entries())[0].sent_at == 5.0
        await alive.record_sent("a", 7.0)  # the holder may


async def test_concurrent_take_overs_share_the_orphans(pg_dsn: str) -> None:
    """SKIP LOCKED: workers taking over at the same moment each get different requests."""
    async with await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) as seed:
        await seed.register([Intent(f"k{i}", body(str(i))) for i in range(60)])
    workers = [await SharedJournal.open(pg_dsn, batch="b", lease=LEASE) for _ in range(4)]
    try:
        rounds = await asyncio.gather(*(w.claim_orphans(5) for w in workers for _ in range(3)))
        keys = [e.key for taken in rounds for e in taken]
        assert len(keys) == 60 and len(set(keys)) == 60
        assert all(len(taken) == 5 for taken in rounds)
    finally:
        await asyncio.gather(*(w.close() for w in workers))


async def test_closing_hands_the_claims_back_at_once(pg_dsn: str) -> None:
    async with await SharedJournal.open(pg_dsn, batch="b", lease=30.0) as other:
        one = await SharedJournal.open(pg_dsn, batch="b", lease=30.0)
        assert await one.claim("a", body("a")) is not None
        assert await other.held_elsewhere() == 1
        await one.close()
        assert await other.held_elsewhere() == 0
        assert await other.claim("a", body("a")) is not None  # no 30 s wait


async def test_batches_of_one_database_are_apart(pg_dsn: str) -> None:
    async with (
        await SharedJournal.open(pg_dsn, batch="x") as x,
        await SharedJournal.open(pg_dsn, batch="y") as y,
    ):
        await x.record_intents([Intent("a", body("x"))])
        await y.record_intents([Intent("a", body("y"))])
        await x.record_slot_limit(3)
        assert [e.request for e in await x.entries()] == [body("x")]
        assert [e.request for e in await y.entries()] == [body("y")]
        assert await y.slot_limit() is None
        assert await SharedJournal.batches(pg_dsn) == ["x", "y"]


async def test_a_failed_statement_fails_the_call_and_the_journal_goes_on(pg_dsn: str) -> None:
    async with await SharedJournal.open(pg_dsn, batch="b") as journal:
        await journal.record_intents([Intent("a", body("a"))])
        admin = await asyncpg.connect(pg_dsn)
        try:
            # The server ends every session of ours (a restart, a failover): a call may fail
            # (as a JournalError), and the pool reconnects for the next ones.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'kling_async'"
            )
            with contextlib.suppress(JournalError):
                await journal.record_status("a", "processing", None)
            await journal.record_status("a", "submitted", None)
            # A statement the server refuses (here: its table is gone for a moment).
            await admin.execute("ALTER TABLE kling_batch_entry RENAME TO kling_away")
            with pytest.raises(JournalError, match="write failed") as caught:
                await journal.record_created("a", "t", 1)
            assert caught.value.operation == "write"
            assert isinstance(caught.value.__cause__, asyncpg.PostgresError)
            await admin.execute("ALTER TABLE kling_away RENAME TO kling_batch_entry")
        finally:
            await admin.close()
        await journal.record_created("a", "t", 1)
        (entry,) = await journal.entries()
        assert (entry.status, entry.task_id) == ("submitted", "t")


async def test_names_and_arguments_are_checked(pg_dsn: str) -> None:
    for batch in ("", " ", "a\nb", "x" * 201):
        with pytest.raises(ValueError, match="batch"):
            await SharedJournal.open(pg_dsn, batch=batch)
    with pytest.raises(ValueError, match="lease"):
        await SharedJournal.open(pg_dsn, batch="b", lease=0)
    kling = KlingClient(api_key="sk-not-real", base_url="http://127.0.0.1:9")
    try:
        with pytest.raises(ValueError, match="needs a batch name"):
            kling.extend_many([], journal=pg_dsn)
        with pytest.raises(ValueError, match="PostgreSQL journal"):
            kling.extend_many([], journal="batch.sqlite", batch="b")
    finally:
        await kling.aclose()


async def test_repr_and_errors_never_show_the_password(pg_dsn: str) -> None:
    secret = "s3cret-for-this-test"
    dsn = pg_dsn.replace("postgres@", f"postgres:{secret}@")  # trusted: the password is unused
    async with await SharedJournal.open(dsn, batch="b") as journal:
        assert secret not in repr(journal) and "***" in repr(journal)
        with pytest.raises(JournalError) as caught:
            await journal.record_created("ghost", "t", 1)
        assert secret not in str(caught.value)


async def test_a_worker_whose_claim_was_taken_sends_nothing(pg_dsn: str) -> None:
    """A worker that stalled past its lease while waiting for a slot finds, when the slot
    comes, that another worker took the request: it does not send it. Once the other one hands
    it back unsent, the first takes it over and it is created, once."""
    clock = FakeClock()
    async with KlingEmulator(clock=clock, durations=Durations(queued=1, running=20)) as emu:
        seed = emu.add_video()
        kling = KlingClient(**emu.client_kwargs("jwt"), clock=clock, retry=RetryPolicy.no_wait())
        # A longer lease than elsewhere: the emulator, the client and both heartbeats share one
        # busy event loop here, and the live worker's lease must not lapse by accident.
        stalled = await SharedJournal.open(pg_dsn, batch="b", lease=LEASE)
        other = await SharedJournal.open(pg_dsn, batch="b", lease=3.0)
        try:
            requests = [VideoExtendRequest(video_id=seed.video_id, prompt=p) for p in "xy"]
            batch = kling.extend_many(requests, journal=stalled, slots=1)
            outcomes: list[str] = []

            async def consume() -> None:
                async for outcome in batch:
                    outcomes.append(outcome.outcome)

            consumer = asyncio.ensure_future(consume())
            for _ in range(500):  # x runs; y is claimed, waiting for the slot
                if emu.stats.created:
                    break
                await asyncio.sleep(0.01)
            die(stalled)
            await asyncio.sleep(LEASE + 0.1)
            second = (await stalled.entries())[1].key
            assert await other.claim(second, body("y")) is not None
            for _ in range(200):  # x ends; the slot goes to y, whose claim is gone
                if outcomes and stalled.closed is False and batch.gate.in_use == 0:
                    break
                await clock.advance(1)
                await settle(kling)
                await asyncio.sleep(0.005)
            assert emu.stats.created == 1
            assert outcomes == ["succeed"]
            await other.close()  # handed back unsent: the first worker takes it over
            for _ in range(200):
                if consumer.done():
                    break
                await clock.advance(1)
                await settle(kling)
                await asyncio.sleep(0.01)
            await consumer
            assert outcomes == ["succeed", "succeed"]
            assert emu.stats.created == 2
            counts = collections.Counter(e.outcome for e in await stalled.entries())
            assert counts == {"succeed": 2}
        finally:
            await stalled.close()
            await other.close()
            await kling.aclose()
