"""``kling-async batch FILE --journal postgresql://…`` in two worker processes, and
``kling-async report postgresql://… --batch NAME`` from a third: one batch, each request
created once, the whole batch's state in the report, the password never printed."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

from kling_async import ScaledClock
from kling_async.testing import Durations, KlingEmulator

from ..cli.conftest import arun_cli, cli_env, read_jsonl, write_jsonl

SCALE = 100.0


def result_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("extend.jsonl.results.*.jsonl"))


async def test_two_cli_workers_drain_one_batch_and_report_shows_it(
    pg_dsn: str, tmp_path: Path
) -> None:
    origin = time.time()
    clock = ScaledClock(SCALE, start_time=origin)
    secret = "pw-never-shown"  # the test cluster trusts local users: the password is unused
    dsn = pg_dsn.replace("postgres@", f"postgres:{secret}@")
    n = 12
    async with KlingEmulator(
        clock=clock, durations=Durations(queued=1, running=10), slot_limit=6
    ) as emu:
        seed = emu.add_video()
        source = write_jsonl(
            tmp_path / "extend.jsonl",
            [{"video_id": seed.video_id, "prompt": f"shot {i}"} for i in range(n)],
        )
        creds = emu.client_kwargs("jwt")
        env = cli_env(
            KLING_BASE_URL=creds["base_url"],
            KLING_ACCESS_KEY=creds["access_key"],
            KLING_SECRET_KEY=creds["secret_key"],
        )
        flags = ("--time-scale", str(SCALE), "--time-origin", repr(origin), "--json")
        runs = await asyncio.gather(
            *(arun_cli("batch", str(source), "--journal", dsn, "--slots", "3", *flags, env=env)
              for _ in range(2))
        )  # fmt: skip
        for run in runs:
            assert run.code == 0, run.stderr
            assert secret not in run.stdout + run.stderr
        created = emu.stats.created
    assert created == n
    handled = collections.Counter(
        o["key"] for run in runs for o in run.of_type("outcome") if not o["from_journal"]
    )
    assert len(handled) == n and set(handled.values()) == {1}
    results = result_files(tmp_path)
    assert len(results) == 2  # one per worker: they share the directory
    lines = [line for path in results for line in await asyncio.to_thread(read_jsonl, path)]
    assert {line["key"] for line in lines if not line["from_journal"]} == set(handled)

    report, alone, other = await asyncio.gather(
        arun_cli("report", dsn, "--batch", "extend.jsonl", "--json", env=env),
        arun_cli("report", dsn, "--json", env=env),  # one batch in the database: it is shown
        arun_cli("report", dsn, "--batch", "nope", "--json", env=env),
    )
    assert report.code == 0, report.stderr
    (data,) = report.of_type("report")
    assert data["counts"] == {"succeed": n} and data["entries"] == n
    assert secret not in report.stdout + report.stderr and "***" in data["journal"]
    assert alone.of_type("report")[0]["counts"] == {"succeed": n}
    assert other.code != 0 and other.of_type("report")[0]["entries"] == 0
