"""kill -9 in the middle of a journalled batch, then resume: no task created twice, none lost."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from pathlib import Path

from kling_async import KlingClient, ScaledClock, VideoExtendRequest
from kling_async.journal import Journal
from kling_async.testing import Durations, KlingEmulator

CHILD = Path(__file__).with_name("batch_child.py")
SCALE = 40.0
N = 30


async def test_killed_batch_resumes_without_duplicates(tmp_path: Path) -> None:
    clock = ScaledClock(SCALE)
    journal = tmp_path / "killed.sqlite"
    async with KlingEmulator(clock=clock, durations=Durations(queued=1, running=12)) as emu:
        seed = emu.add_video()
        creds = emu.client_kwargs("jwt")
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            creds["base_url"],
            creds["access_key"],
            creds["secret_key"],
            str(journal),
            str(N),
            seed.video_id,
            str(SCALE),
            str(clock.time()),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        for _ in range(2000):  # until the child has created some tasks and finished a few
            if emu.stats.created >= 12 or child.returncode is not None:
                break
            await asyncio.sleep(0.005)
        assert child.returncode is None, "the child finished before it could be killed"
        child.send_signal(signal.SIGKILL)
        await child.wait()
        assert child.stdout is not None
        await child.stdout.read()
        killed_at = emu.stats.created
        assert 0 < killed_at < N

        entries = Journal.read(journal)
        assert entries, "the journal recorded nothing before the kill"
        states = collections.Counter(e.state for e in entries)
        assert states["created"] + states["final"] >= 1

        async with KlingClient(**creds, clock=clock) as kling:
            requests = [
                VideoExtendRequest(video_id=seed.video_id, prompt=f"r{i}") for i in range(N)
            ]
            outcomes = [o async for o in kling.extend_many(requests, journal=journal, slots=5)]
        assert collections.Counter(o.outcome for o in outcomes) == {"succeed": N}
        assert emu.stats.created == N  # every task exactly once, across both runs
        assert len({o.task.task_id for o in outcomes if o.task}) == N
