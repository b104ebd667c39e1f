"""A batch process for the kill-and-resume test: ``python batch_child.py URL AK SK JOURNAL N
VIDEO SCALE EPOCH``. Prints one line per outcome; the test kills it with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import sys

from kling_async import KlingClient, ScaledClock, VideoExtendRequest


async def main(argv: list[str]) -> None:
    url, ak, sk, journal, n, video, scale, epoch = argv
    clock = ScaledClock(float(scale), start_time=float(epoch))
    async with KlingClient(base_url=url, access_key=ak, secret_key=sk, clock=clock) as kling:
        requests = [VideoExtendRequest(video_id=video, prompt=f"r{i}") for i in range(int(n))]
        async for outcome in kling.extend_many(requests, journal=journal, slots=5):
            print(outcome.key, outcome.outcome, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
