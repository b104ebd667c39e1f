"""A PostgreSQL outage mid-batch is a pause, not a crash (issue #25): two ``kling-async batch``
workers of one shared batch, the server shut down as a restart or fail-over does, then started
again. Short of the outage bound the batch completes, each request created once and yielded by
one worker; past it both workers stop with exit 5 and one line, and a run again completes it.

Each test that stops the server has one of its own (``halt``/``resume``: the session's
serves the others). Leases of 1.5 s run out during the outage, so the fences are what is tested.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from kling_async import DatabaseUnavailableError, KlingClient, ScaledClock
from kling_async.journal import Intent, SharedJournal
from kling_async.postgres import Database
from kling_async.postgres.coordinator import PostgresCoordinator
from kling_async.testing import Durations, KlingEmulator

from ..cli.conftest import Run, arun_cli, cli_env, write_jsonl
from ..conftest import no_postgres
from ..pg_server import PostgresServer, find_bindir

SCALE = 100.0
N = 40
BATCH = "outage"


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        no_postgres("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/postgres)")
    assert bindir is not None
    with PostgresServer(bindir) as own:
        yield own


class Setup:
    """An emulator that accepts a duplicate ``external_task_id`` (so a create sent twice makes
    two tasks, and shows), a batch file, and the workers' command line."""

    def __init__(self, emu: KlingEmulator, origin: float, dsn: str, folder: Path) -> None:
        self.emu = emu
        seed = emu.add_video()
        rows = [{"video_id": seed.video_id, "prompt": f"shot {i}"} for i in range(N)]
        self.source = write_jsonl(folder / "extend.jsonl", rows)
        creds = emu.client_kwargs("jwt")
        self.env = cli_env(
            KLING_BASE_URL=creds["base_url"],
            KLING_ACCESS_KEY=creds["access_key"],
            KLING_SECRET_KEY=creds["secret_key"],
        )
        self.args = (
            "batch", str(self.source), "--journal", f"{dsn}?kling_lease=1.5", "--batch", BATCH,
            "--slots", "4", "--time-scale", str(SCALE), "--time-origin", repr(origin), "--json",
        )  # fmt: skip

    def workers(self, *flags: str) -> list[asyncio.Task[Run]]:
        return [
            asyncio.ensure_future(arun_cli(*self.args, *flags, env=self.env, timeout=90))
            for _ in range(2)
        ]

    async def under_way(self, dsn: str, created: int) -> None:
        """Until both workers joined (opening is not retried: a database unreachable at the
        start is more often a wrong DSN than a restart) and ``created`` tasks run."""
        conn = await asyncpg.connect(dsn)
        try:
            for _ in range(3000):  # real time
                joined = (
                    await conn.fetchval(
                        "SELECT count(*) FROM kling_batch_worker WHERE batch = $1", BATCH
                    )
                    if await conn.fetchval("SELECT to_regclass('kling_batch_worker')")
                    else 0
                )
                if joined >= 2 and self.emu.stats.created >= created:
                    return
                await asyncio.sleep(0.01)
        finally:
            await conn.close()
        raise AssertionError(f"{joined} workers, {self.emu.stats.created} tasks created")

    def tasks_per_request(self) -> collections.Counter[str]:
        return collections.Counter(
            str((rec.body or {}).get("external_task_id")) for rec in self.emu.tasks.values()
            if rec.kind == "video-extend"  # not the seed video's task
        )  # fmt: skip


def emulator(clock: ScaledClock) -> KlingEmulator:
    return KlingEmulator(
        clock=clock,
        durations=Durations(queued=2, running=40),
        slot_limit=8,
        duplicate_external_id="accept",
    )


def clean(run: Run) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert "never retrieved" not in run.stderr, run.stderr


def handled(runs: list[Run]) -> collections.Counter[str]:
    """Requests each worker yielded as finished by it (not read back from the journal)."""
    return collections.Counter(
        o["key"] for run in runs for o in run.of_type("outcome") if not o["from_journal"]
    )


async def outcomes(dsn: str) -> dict[str | None, int]:
    entries = await SharedJournal.read(dsn, BATCH)
    return dict(collections.Counter(e.outcome for e in entries))


async def test_a_short_outage_mid_batch_is_a_pause(server: PostgresServer, tmp_path: Path) -> None:
    origin = time.time()
    clock = ScaledClock(SCALE, start_time=origin)
    async with emulator(clock) as emu:
        setup = Setup(emu, origin, server.dsn, tmp_path)
        workers = setup.workers("--db-outage", "30")
        await setup.under_way(server.dsn, 10)
        await asyncio.to_thread(server.halt)
        await asyncio.sleep(2.5)  # longer than the lease: every claim is free to take over
        await asyncio.to_thread(server.resume)
        runs = list(await asyncio.gather(*workers))
        for run in runs:
            clean(run)
            assert run.code == 0, run.stderr
        per_request = setup.tasks_per_request()
    assert len(per_request) == N and set(per_request.values()) == {1}, per_request  # 0 dup
    assert await outcomes(server.dsn) == {"succeed": N}  # 0 lost
    # Each request yielded by one worker: a sum over the workers counts it once.
    assert set(handled(runs).values()) == {1} and len(handled(runs)) == N


async def test_an_outage_past_the_bound_stops_cleanly_and_a_run_again_completes(
    server: PostgresServer, tmp_path: Path
) -> None:
    origin = time.time()
    clock = ScaledClock(SCALE, start_time=origin)
    async with emulator(clock) as emu:
        setup = Setup(emu, origin, server.dsn, tmp_path)
        workers = setup.workers("--db-outage", "1.5")
        await setup.under_way(server.dsn, 10)
        await asyncio.to_thread(server.halt)
        stopped = list(await asyncio.gather(*workers))  # while the database is down
        for run in stopped:
            clean(run)
            assert run.code == 5, run.stderr
            (error,) = run.of_type("error")
            assert error["error_type"] == "DatabaseUnavailableError"
            assert "run the same command again" in error["message"]
            assert "\n" not in error["message"]
        await asyncio.to_thread(server.resume)
        again = list(await asyncio.gather(*setup.workers()))
        for run in again:
            clean(run)
            assert run.code == 0, run.stderr
        per_request = setup.tasks_per_request()
    assert len(per_request) == N and set(per_request.values()) == {1}, per_request
    assert await outcomes(server.dsn) == {"succeed": N}


# -- one statement at a time --------------------------------------------------------------------


async def test_a_statement_waits_out_a_restart_and_gives_up_past_the_bound(
    server: PostgresServer,
) -> None:
    async with await Database.open(server.dsn + "?kling_outage=20") as db:
        await db.run(lambda conn: conn.fetchval("SELECT 1"), "warm-up")
        await asyncio.to_thread(server.halt)
        waiting = asyncio.ensure_future(db.run(lambda conn: conn.fetchval("SELECT 2"), "read"))
        await asyncio.sleep(0.5)
        assert not waiting.done() and db.outage.down_since is not None
        await asyncio.to_thread(server.resume)
        assert await asyncio.wait_for(waiting, 10.0) == 2
        assert db.outage.down_since is None and db.outage.outages == 1
    async with await Database.open(server.dsn, outage=0.5) as db:
        await asyncio.to_thread(server.halt)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match=r"more than 0.5s \(read: "):
            await db.run(lambda conn: conn.fetchval("SELECT 3"), "read")
        assert time.monotonic() - started < 5.0
        await asyncio.to_thread(server.resume)


async def test_a_failing_statement_is_not_taken_for_an_outage(pg_dsn: str) -> None:
    async with await Database.open(pg_dsn) as db:
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await db.run(lambda conn: conn.execute("SELEC 1"), "typo")
        assert db.outage.repeats == 0


@contextlib.contextmanager
def first_answer_lost(monkeypatch: pytest.MonkeyPatch, operation: str) -> Iterator[list[int]]:
    """The next statement named ``operation`` runs, commits, and its answer is lost (the
    connection drops right after): what a repeat must not mistake for "nothing happened"."""
    ran: list[int] = []
    real = Database.run

    async def lossy(self: Database, op: Any, name: str) -> Any:
        if name != operation or ran:
            return await real(self, op, name)

        async def once(conn: Any) -> Any:
            result = await op(conn)
            ran.append(1)
            if len(ran) == 1:
                raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
            return result

        return await real(self, once, name)

    monkeypatch.setattr(Database, "run", lossy)
    yield ran
    monkeypatch.undo()


async def test_a_repeated_take_over_returns_what_the_lost_attempt_took(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        await SharedJournal.open(pg_dsn, batch="b", lease=0.3) as dead,
        await SharedJournal.open(pg_dsn, batch="b", lease=0.3) as alive,
    ):
        await dead.record_intents([Intent("a", {"kind": "video-extend", "body": {}})])
        assert dead._heartbeat is not None
        dead._heartbeat.cancel()
        await asyncio.sleep(0.6)
        with first_answer_lost(monkeypatch, "journal write") as ran:
            taken = await alive.claim_orphans(1)
        assert len(ran) == 2  # run, its answer lost, run again
        assert [e.key for e in taken] == ["a"]  # not left held by a worker that does not know


async def test_a_repeated_slot_take_finds_its_own_lease_and_holds_one_slot(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with KlingEmulator() as emu:
        coordinator = PostgresCoordinator(pg_dsn)
        async with KlingClient(**emu.client_kwargs(), slots=2, coordinator=coordinator) as kling:
            with first_answer_lost(monkeypatch, "slot take") as ran:
                slot = await kling.gate.acquire()
            assert len(ran) == 2
            async with coordinator.db.pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM kling_slot_lease") == 1
            slot.release()


async def test_a_batch_past_the_bound_raises_and_holds_only_the_slots_of_its_tasks(
    server: PostgresServer,
) -> None:
    """In-process, the library's side of exit 5: ``extend_many`` raises
    DatabaseUnavailableError; every slot still held is a task's (running, or a create whose
    answer was cut off): none leaked by a journal call that failed first."""
    clock = ScaledClock(SCALE)
    async with KlingEmulator(clock=clock, durations=Durations(2, 40), slot_limit=8) as emu:
        seed = emu.add_video()
        requests = [{"video_id": seed.video_id, "prompt": f"p{i}"} for i in range(N)]
        async with (
            KlingClient(**emu.client_kwargs(), clock=clock) as kling,
            await SharedJournal.open(server.dsn, batch="lib", outage=0.5) as journal,
        ):
            batch = kling.extend_many(requests, journal=journal, slots=8)

            async def consume() -> None:
                seen = 0
                async for _ in batch:
                    seen += 1
                    if seen == 3:
                        await asyncio.to_thread(server.halt)

            with pytest.raises(DatabaseUnavailableError):
                await asyncio.wait_for(consume(), 30.0)
            # At most (a task may have ended since, seen by the client's scheduler).
            assert kling.gate.in_use <= len(batch.running) + len(batch.unsettled)
            assert kling.gate.waiting == 0
        await asyncio.to_thread(server.resume)
