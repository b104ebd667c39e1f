"""A batch process for the kill-and-resume tests: ``python batch_child.py CONFIG_JSON``.

The config names the client's keyword arguments (``client``), the ``journal``, the
``requests`` (video-extend fields), ``slots``, and the emulator's clock (``scale``,
``epoch``). Prints one line per outcome; the test kills it with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import json
import sys

from kling_async import KlingClient, ScaledClock, VideoExtendRequest


async def main(config: dict[str, object]) -> None:
    clock = ScaledClock(float(config["scale"]), start_time=float(config["epoch"]))  # type: ignore[arg-type]
    client: dict[str, str] = config["client"]  # type: ignore[assignment]
    rows: list[dict[str, str]] = config["requests"]  # type: ignore[assignment]
    async with KlingClient(**client, clock=clock) as kling:
        requests = [VideoExtendRequest(**row) for row in rows]
        batch = kling.extend_many(
            requests, journal=str(config["journal"]), slots=int(config["slots"])
        )  # type: ignore[call-overload]
        async for outcome in batch:
            print(outcome.key, outcome.outcome, flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
