"""Callback fan-out through PostgreSQL: a callback that reaches replica B wakes ``wait()`` on
replica A, which never polled; an unsigned one is confirmed by A's own GET; a LISTEN connection
that drops comes back and reads what was published meanwhile.

Replica A runs on a clock that never moves, so its scheduler never polls on its own: whatever
wakes it came through the database."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from kling_async import FakeClock, KlingClient, ScaledClock, TaskStatus
from kling_async.postgres.coordinator import PostgresCoordinator
from kling_async.testing import Durations, KlingEmulator
from kling_async.webhooks import CallbackReceiver, aiohttp_handler

from ..conftest import Serve
from ..webhooks.common import SECRET, legacy_body
from .children import clock_of, line, spawn


def gets(emu: KlingEmulator) -> int:
    return emu.stats.requests[("GET", "get", 200)]


async def test_a_callback_at_replica_b_wakes_wait_on_replica_a(pg_dsn: str, serve: Serve) -> None:
    emu_clock = FakeClock()
    async with KlingEmulator(
        clock=emu_clock, webhook_secret=SECRET, durations=Durations(2, 100)
    ) as emu:
        a = KlingClient(**emu.client_kwargs(), clock=FakeClock(), coordinator=pg_dsn)
        b = KlingClient(**emu.client_kwargs(), clock=emu_clock, coordinator=pg_dsn)
        async with a, b:
            url = await serve(aiohttp_handler(CallbackReceiver(secret=SECRET, client=b)))
            task = await a.extend_video(emu.add_video().video_id, callback_url=url)
            waiting = asyncio.ensure_future(a.wait(task))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            polls = gets(emu)

            await emu_clock.advance(200)  # the task ends; its callbacks go to B only
            await emu.flush_callbacks()
            done = await asyncio.wait_for(waiting, 5.0)
            assert done.task_status is TaskStatus.SUCCEED
            assert done.videos and done.videos[0].url  # the whole task, as the callback had it
            assert gets(emu) == polls  # nobody polled: A learned it from B's callback
            assert [c.status for c in emu.callbacks] == ["submitted", "processing", "succeed"]
            assert a.gate.in_use == 0  # and A's slot for the task was given back


async def test_an_unsigned_callback_is_confirmed_by_a_poll_in_the_replica_that_waits(
    pg_dsn: str, serve: Serve
) -> None:
    emu_clock = FakeClock()
    async with KlingEmulator(clock=emu_clock, durations=Durations(2, 100)) as emu:
        a = KlingClient(**emu.client_kwargs(), clock=FakeClock(), coordinator=pg_dsn)
        b = KlingClient(**emu.client_kwargs(), clock=emu_clock, coordinator=pg_dsn)
        async with a, b:
            url = await serve(aiohttp_handler(CallbackReceiver(client=b)))
            task = await a.extend_video(emu.add_video().video_id)
            waiting = asyncio.ensure_future(a.wait(task))
            await emu_clock.advance(10)  # processing, not done
            polls = a.scheduler.polls_sent
            forged = legacy_body(task_id=task.task_id, status="succeed")
            async with aiohttp.ClientSession() as http, http.post(url, data=forged) as resp:
                assert resp.status == 200
            for _ in range(100):  # A's confirming GET
                if a.scheduler.polls_sent > polls and a.scheduler.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert a.scheduler.polls_sent == polls + 1
            await asyncio.sleep(0.05)
            assert not waiting.done()  # the GET said `processing`: the forgery changed nothing
            waiting.cancel()


async def test_a_replica_in_another_process_wakes_the_waiter(pg_dsn: str) -> None:
    clock = ScaledClock(1.0)
    durations = Durations(queued=0.1, running=0.3)
    async with KlingEmulator(clock=clock, webhook_secret=SECRET, durations=durations) as emu:
        # A static key: A's frozen clock mints no tokens the emulator would find stale.
        config = {"mode": "receive", "client": emu.client_kwargs("key"), "dsn": pg_dsn}
        replica_b = await spawn({**config, "secret": SECRET, **clock_of(clock)}, stdin=True)
        try:
            url = await line(replica_b)
            a = KlingClient(**emu.client_kwargs("key"), clock=FakeClock(), coordinator=pg_dsn)
            async with a:
                tasks = [
                    await a.extend_video(emu.add_video().video_id, callback_url=url)
                    for _ in range(3)
                ]
                polls = gets(emu)
                ended = await asyncio.wait_for(asyncio.gather(*map(a.wait, tasks)), 10.0)
                assert [t.task_status for t in ended] == [TaskStatus.SUCCEED] * 3
                assert gets(emu) == polls
        finally:
            assert replica_b.stdin is not None
            replica_b.stdin.close()
            summary = json.loads(await line(replica_b))
            assert await replica_b.wait() == 0
        assert summary["accepted"] == 9  # three statuses of each task, all at B


async def test_the_listen_connection_comes_back_and_reads_what_it_missed(
    pg_dsn: str, serve: Serve
) -> None:
    emu_clock = FakeClock()
    async with KlingEmulator(
        clock=emu_clock, webhook_secret=SECRET, durations=Durations(2, 100)
    ) as emu:
        coordinator = PostgresCoordinator(pg_dsn)
        a = KlingClient(**emu.client_kwargs(), clock=FakeClock(), coordinator=coordinator)
        b = KlingClient(**emu.client_kwargs(), clock=emu_clock, coordinator=pg_dsn)
        async with a, b:
            url = await serve(aiohttp_handler(CallbackReceiver(secret=SECRET, client=b)))
            task = await a.extend_video(emu.add_video().video_id, callback_url=url)
            waiting = asyncio.ensure_future(a.wait(task))
            fanout = coordinator._fanout
            fanout.reconnect_delay = 0.5  # deaf long enough for B to publish meanwhile
            pid = fanout.connection.get_server_pid()
            async with coordinator.db.pool.acquire() as conn:
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
            for _ in range(200):
                if fanout.connection is None:
                    break
                await asyncio.sleep(0.01)
            assert fanout.connection is None  # A noticed at once

            await emu_clock.advance(200)
            await emu.flush_callbacks()  # B publishes while A is not listening
            done = await asyncio.wait_for(waiting, 10.0)
            assert done.task_status is TaskStatus.SUCCEED
            assert fanout.reconnects == 1
            assert fanout.replayed >= 1  # read back, not heard
            assert fanout.connection.get_server_pid() != pid


async def test_a_row_that_is_not_a_task_is_skipped(pg_dsn: str, serve: Serve) -> None:
    emu_clock = FakeClock()
    async with KlingEmulator(
        clock=emu_clock, webhook_secret=SECRET, durations=Durations(2, 100)
    ) as emu:
        coordinator = PostgresCoordinator(pg_dsn)
        a = KlingClient(**emu.client_kwargs(), clock=FakeClock(), coordinator=coordinator)
        b = KlingClient(**emu.client_kwargs(), clock=emu_clock, coordinator=pg_dsn)
        async with a, b:
            url = await serve(aiohttp_handler(CallbackReceiver(secret=SECRET, client=b)))
            task = await a.extend_video(emu.add_video().video_id, callback_url=url)
            waiting = asyncio.ensure_future(a.wait(task))
            bad = [
                "not json",
                json.dumps({"kind": "no-such-kind", "task_id": task.task_id}),
                json.dumps({"kind": "video-extend", "task_id": task.task_id}),  # no status
                json.dumps([1, 2]),
                "x" * 300_000,
            ]
            async with coordinator.db.pool.acquire() as conn:
                for text in bad:
                    row_id = await conn.fetchval(
                        "INSERT INTO kling_callback (account, origin, task_json, trusted) "
                        "VALUES ($1, 'elsewhere', $2, true) RETURNING id",
                        coordinator.account,
                        text,
                    )
                    await conn.execute("SELECT pg_notify($1, $2)", coordinator.channel,
                                       f"c:{row_id}:elsewhere")  # fmt: skip
                await conn.execute("SELECT pg_notify($1, 'c:x:y')", coordinator.channel)
            await asyncio.sleep(0.2)
            assert not waiting.done()  # nothing believed, nothing broken
            await emu_clock.advance(200)
            await emu.flush_callbacks()
            done = await asyncio.wait_for(waiting, 5.0)
            assert done.task_status is TaskStatus.SUCCEED
