"""Many concurrent creates under a slot limit: ``asyncio.gather`` and ``extend_many`` (issue #13).

    .venv/bin/python benchmarks/gather_slots.py [--scale 250] [--spread 0.25] [--runs 1]

The emulator runs in its own process (``_emulator_proc.py``) on a shared scaled clock; every
task queues 5 s and runs 315 s of clock time, each drawn within +-``spread`` (seeded). Rows:

* ``semaphore``: the baseline, what a careful user writes by hand: plain aiohttp, an
  ``asyncio.Semaphore(slots)`` around create + a GET every 5 s until the task ends;
* ``gather``: ``asyncio.gather`` over 100 x (``kling.extend_video`` + ``kling.wait``) on a
  10-slot account, default client (no slot hint), then with ``KlingClient(slots=10)``;
* ``extend_many``: 400 extends on a 20-slot account, ``slots=None``, then ``slots=20``.

lower bound = the makespan of an oracle that starts each task, in the order they were created,
the instant a slot frees (list scheduling of the run's own durations, from the emulator's
records): no client can do better with those durations and that order. POSTs per task count
every create the emulator answered (refused ones too), divided by the tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import uuid
from typing import Any

import aiohttp
from _harness import EmulatorProcess, SharedClock, machine_note, refusals_1303, requests_by, table

from kling_async import KlingClient

QUEUED, RUNNING = 5.0, 315.0
PATH = "/v1/videos/video-extend"


def oracle_bound(report: dict[str, Any], start: float, slots: int) -> float:
    """List scheduling of the created tasks' durations, in creation order, on ``slots``."""
    tasks = sorted(
        (created, queued + running)
        for created, queued, running in report["tasks"].values()
        if created >= start
    )
    free = [0.0] * slots
    end = 0.0
    for _, duration in tasks:
        at = heapq.heappop(free)
        end = max(end, at + duration)
        heapq.heappush(free, at + duration)
    return end


async def run(
    variant: str, n: int, slots: int, hint: int | None, scale: float, spread: float
) -> dict[str, Any]:
    clock = SharedClock(scale)
    async with EmulatorProcess(
        clock, slots=slots, queued=QUEUED, running=RUNNING, spread=spread
    ) as emu:
        info = emu.info
        start = clock.time()
        if variant == "semaphore":
            outcomes = await semaphore_loop(info, n, slots, clock)
        else:
            async with KlingClient(
                api_key=info["api_key"], base_url=info["base_url"], clock=clock, slots=hint
            ) as kling:
                if variant == "gather":

                    async def one() -> str:
                        task = await kling.extend_video(info["video_id"])
                        return (await kling.wait(task)).task_status.value

                    outcomes = list(await asyncio.gather(*(one() for _ in range(n))))
                else:
                    batch = kling.extend_many([{"video_id": info["video_id"]}] * n, slots=hint)
                    outcomes = [o.outcome async for o in batch]
        makespan = clock.time() - start
        report = await emu.stop()
    bound = oracle_bound(report, start, slots)
    return {
        "name": f"{variant}, {'slots=' + str(hint) if hint else 'no hint'}"
        if variant != "semaphore"
        else "semaphore (baseline)",
        "shape": f"{n} x {slots}",
        "succeed": sum(1 for o in outcomes if o == "succeed"),
        "makespan": makespan,
        "bound": bound,
        "ratio": makespan / bound,
        "posts_per_task": requests_by(report, "create") / n,
        "refused": refusals_1303(report),
        "refused_per_slot": refusals_1303(report) / slots,
        "peak": report.get("max_slots_in_use", 0),
    }


async def semaphore_loop(info: dict[str, Any], n: int, slots: int, clock: SharedClock) -> list[str]:
    """The hand-written loop: a semaphore of ``slots``, create, GET every 5 s until the end."""
    url = info["base_url"] + PATH
    headers = {"Authorization": f"Bearer {info['api_key']}"}
    gate = asyncio.Semaphore(slots)

    async def extend(session: aiohttp.ClientSession) -> str:
        async with gate:
            body = {"video_id": info["video_id"], "external_task_id": f"ka-{uuid.uuid4().hex}"}
            async with session.post(url, json=body, headers=headers) as r:
                answer = json.loads(await r.read())
            if answer["code"] != 0:
                return f"refused {answer['code']}"
            task_id = answer["data"]["task_id"]
            while True:
                await clock.sleep(5.0)
                async with session.get(f"{url}/{task_id}", headers=headers) as r:
                    answer = json.loads(await r.read())
                status: str = answer["data"]["task_status"] if answer["code"] == 0 else ""
                if status in ("succeed", "failed"):
                    return status

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(extend(session) for _ in range(n))))


SCENARIOS = [
    ("semaphore", 100, 10, 10),
    ("gather", 100, 10, None),
    ("gather", 100, 10, 10),
    ("extend_many", 400, 20, None),
    ("extend_many", 400, 20, 20),
]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=250.0, help="clock s per real s")
    parser.add_argument("--spread", type=float, default=0.25, help="durations +- this fraction")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    print(f"T = {QUEUED + RUNNING:g} clock s +-{args.spread:.0%}, scale {args.scale:g}\n")
    for number in range(1, args.runs + 1):
        results = [
            await run(variant, n, slots, hint, args.scale, args.spread)
            for variant, n, slots, hint in SCENARIOS
        ]
        baseline = results[0]["ratio"]
        rows = [
            [
                r["name"],
                r["shape"],
                f"{r['succeed']}/{r['shape'].split()[0]}",
                f"{r['makespan']:.0f}",
                f"{r['bound']:.0f}",
                f"{r['ratio']:.3f}",
                f"{r['ratio'] / baseline:.3f}",
                f"{r['posts_per_task']:.2f}",
                r["refused"],
                f"{r['refused_per_slot']:.2f}",
                r["peak"],
            ]
            for r in results
        ]
        print(f"run {number}:")
        headers = ["", "tasks x slots", "succeed", "makespan", "bound", "/bound", "/baseline"]
        headers += ["POSTs/task", "1303s", "1303s/slot", "peak slots"]
        print(table(headers, rows))
        print()


if __name__ == "__main__":
    asyncio.run(main())
