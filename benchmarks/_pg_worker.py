"""One worker of ``pg_workers.py``: ``python _pg_worker.py CONFIG_JSON``.

Runs ``extend_many`` over a shared PostgreSQL journal, on the emulator's scaled clock
(``ScaledClock.following``), and prints one line per outcome. ``coordinator`` in the config is
passed to ``KlingClient(coordinator=...)`` as is (issue #19's shared slot gate), when given.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from kling_async import KlingClient, ScaledClock, SharedJournal


async def main(config: dict[str, Any]) -> None:
    clock = ScaledClock.following(float(config["scale"]), origin=float(config["origin"]))
    options: dict[str, Any] = dict(config["client"])
    if config.get("coordinator"):
        options["coordinator"] = config["coordinator"]
    async with (
        KlingClient(**options, clock=clock) as kling,
        await SharedJournal.open(
            config["dsn"], batch=config["batch"], lease=float(config["lease"]), clock=clock
        ) as journal,
    ):
        requests = [{"video_id": config["video_id"], "prompt": f"p{i}"} for i in range(config["n"])]
        batch = kling.extend_many(requests, journal=journal, slots=config.get("slots"))
        async for outcome in batch:
            print(outcome.key, outcome.outcome, flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
