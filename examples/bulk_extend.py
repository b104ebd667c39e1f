"""Extend every video listed in a JSON Lines file, resumably, and save what came of each.

    export KLING_ACCESS_KEY=... KLING_SECRET_KEY=...     # or KLING_API_KEY (+ KLING_BASE_URL)
    python examples/bulk_extend.py examples/requests.jsonl

Each line holds the fields of a ``VideoExtendRequest`` (``video_id`` and optionally
``parent_task_id`` or ``task_id``, ``prompt``, ``negative_prompt``, ``cfg_scale``...). The
journal beside the file makes a second run resume where the first stopped, even after a crash,
and never pay for a video twice. ``kling-async batch FILE`` does the same with progress bars;
this is the page of code to start from when you need your own.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

from kling_async import KlingClient, VideoExtendRequest


def read_requests(source: Path) -> list[VideoExtendRequest]:
    """Every line as a request, all validated before anything is sent."""
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    rows = [{("parent_task_id" if k == "task_id" else k): v for k, v in r.items()} for r in rows]
    return [VideoExtendRequest(**row) for row in rows]


async def extend_all(
    kling: KlingClient, requests: list[VideoExtendRequest], journal: str, results: TextIO
) -> int:
    batch = kling.extend_many(requests, journal=journal, slots=5)
    async for outcome in batch:  # in the order they end
        video = outcome.task.video if outcome.task else None
        result = video.url if video else outcome.message
        results.write(
            json.dumps({"key": outcome.key, "outcome": outcome.outcome, "result": result})
        )
        results.write("\n")
        print(f"{outcome.outcome:>9}  {outcome.key}  {result}")
    report = batch.report()
    print(report.to_json(indent=2))
    return 0 if report.counts.get("succeed", 0) == len(requests) else 1


async def main(requests: list[VideoExtendRequest], journal: str, results: TextIO) -> int:
    async with KlingClient() as kling:  # credentials and base URL from the KLING_* variables
        return await extend_all(kling, requests, journal, results)


if __name__ == "__main__":
    source = Path(sys.argv[1])
    requests = read_requests(source)
    with open(f"{source}.results.jsonl", "w") as results:
        code = asyncio.run(main(requests, f"{source}.journal.sqlite", results))
    sys.exit(code)
