"""``kling-async batch --preflight`` as a subprocess: a batch the packs cannot cover exits 3
with needed vs remaining and sends nothing (no journal left behind); one that fits runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kling_async import ScaledClock
from kling_async.testing import Durations, KlingEmulator

from .conftest import SCALE, Remote, arun_cli, cli_env, exists, write_jsonl


@pytest.fixture
async def short() -> AsyncIterator[Remote]:
    """An emulator whose account has 2 units left."""
    origin = time.time()
    async with KlingEmulator(
        clock=ScaledClock(SCALE, start_time=origin),
        durations=Durations(queued=1, running=20),
        balance_units=2,
    ) as emu:
        creds = emu.client_kwargs("key")
        env = cli_env(KLING_BASE_URL=creds["base_url"], KLING_API_KEY=creds["api_key"])
        yield Remote(emu, env, ("--time-scale", str(SCALE), "--time-origin", repr(origin)))


async def test_preflight_refuses_a_batch_the_packs_cannot_cover(
    short: Remote, tmp_path: Path
) -> None:
    videos = [short.emu.add_video() for _ in range(3)]
    source = write_jsonl(tmp_path / "rows.jsonl", [{"video_id": v.video_id} for v in videos])
    args = ("batch", str(source), "--preflight", "--json", *short.clock_flags)
    run = await arun_cli(*args, env=short.env)
    assert run.code == 3, run.stderr
    assert "needs 3 video units" in run.stderr and "2 any-product" in run.stderr
    (error,) = run.of_type("error")
    assert error["exit_code"] == 3 and error["error_type"] == "PreflightBalanceError"
    assert short.emu.stats.created == 0 and short.emu.balance == 2
    assert not exists(f"{source}.journal.sqlite")
    # Without --preflight the batch is sent, and 1102 stops it after two.
    run = await arun_cli("batch", str(source), "--json", *short.clock_flags, env=short.env)
    assert short.emu.stats.created == 2 and run.code == 3


async def test_preflight_lets_a_batch_that_fits_run(short: Remote, tmp_path: Path) -> None:
    videos = [short.emu.add_video() for _ in range(2)]
    source = write_jsonl(tmp_path / "rows.jsonl", [{"video_id": v.video_id} for v in videos])
    args = ("batch", str(source), "--preflight", "--json", *short.clock_flags)
    run = await arun_cli(*args, env=short.env)
    assert run.code == 0, run.stderr
    assert [o["outcome"] for o in run.of_type("outcome")] == ["succeed", "succeed"]
    assert sum(n for (_, r, _), n in short.emu.stats.requests.items() if r == "account") == 1
