"""A PostgreSQL outage mid-batch is a pause, not a crash (issue #25): two ``kling-async batch``
workers of one shared batch, the server shut down as a restart or fail-over does, then started
again. Short of the outage bound the batch completes, each request created once and yielded by
one worker; past it both workers stop with exit 5 and one line, and a run again completes it.

Each test has a server of its own (``halt``/``resume``: the session's server serves the
others). Leases of 1.5 s run out during the outage, so the fences are what is tested.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from kling_async import ScaledClock
from kling_async.journal import SharedJournal
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
