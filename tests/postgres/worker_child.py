"""One worker of a shared batch, for the multi-process tests: ``python worker_child.py CONFIG``.

The config names the client's keyword arguments (``client``), the database (``dsn``), the
``batch`` and its ``lease``, the ``requests`` (video-extend fields), ``slots``, and the
emulator's clock (``scale``, ``origin``). Prints one JSON line per outcome; a test may kill it
with SIGKILL mid-run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from kling_async import KlingClient, ScaledClock, VideoExtendRequest
from kling_async.journal import SharedJournal


async def main(config: dict[str, Any]) -> None:
    clock = ScaledClock.following(float(config["scale"]), origin=float(config["origin"]))
    async with (
        KlingClient(**config["client"], clock=clock) as kling,
        await SharedJournal.open(
            config["dsn"], batch=config["batch"], lease=float(config["lease"])
        ) as journal,
    ):
        requests = [VideoExtendRequest(**row) for row in config["requests"]]
        batch = kling.extend_many(requests, journal=journal, slots=config.get("slots"))
        async for outcome in batch:
            task = outcome.task.task_id if outcome.task is not None else None
            line = {"key": outcome.key, "outcome": outcome.outcome, "task_id": task,
                    "from_journal": outcome.from_journal}  # fmt: skip
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
