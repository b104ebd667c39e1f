"""Extend a handful of videos in bulk against the built-in emulator, printing every status
change and the final report. Swap the emulator for real credentials to run it for real:
``KlingClient()`` reads KLING_ACCESS_KEY/KLING_SECRET_KEY (or KLING_API_KEY) and KLING_BASE_URL.

    python examples/bulk_extend.py
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from kling_async import KlingClient, ScaledClock, VideoExtendRequest
from kling_async.testing import Durations, KlingEmulator


async def main() -> None:
    clock = ScaledClock(60.0)  # a 5-minute extend takes 5 seconds
    durations = Durations.random(mean_running=240, spread=60, queued=5, seed=1)
    async with KlingEmulator(
        clock=clock, slot_limit=5, durations=durations, failure_rate=0.1
    ) as emu:
        videos = [emu.add_video(duration=5.0) for _ in range(12)]
        requests = [
            VideoExtendRequest(
                video_id=v.video_id, parent_task_id=v.task_id, prompt="the camera pulls back"
            )
            for v in videos
        ]
        journal = Path(tempfile.mkdtemp()) / "batch.sqlite"
        async with KlingClient(**emu.client_kwargs("jwt"), clock=clock) as kling:
            batch = kling.extend_many(requests, journal=journal, slots=5)
            async for outcome in batch:
                p = batch.progress
                print(
                    f"{outcome.outcome:>9}  {outcome.key[:20]:<20} {outcome.message[:40]:<40}"
                    f"  [{p.done}/{p.total} done, {p.slots_in_use} running]"
                )
            print(json.dumps(batch.report().to_json(), indent=2, default=str))


if __name__ == "__main__":
    asyncio.run(main())
