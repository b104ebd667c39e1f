"""Poll where the end is: the learned cadence against a fair naive loop (issue #16).

    .venv/bin/python benchmarks/cadence.py [--means 120,320,900] [--tasks 400] [--slots 20]
                                           [--spread 0.25] [--scale S] [--runs 3]

For each mean duration (none of them is what the library is told a video-extend takes, except
320 s, which it is told), the emulator runs in its own process on a shared scaled clock with
``--slots`` task slots; each task queues ~5 s and runs ``mean - 5`` s, both drawn uniformly
within +-``spread`` (seeded). Two arms, alternating, each told the slot count:

* ``library``: ``extend_many`` of ``--tasks`` extends, default client settings, polling only;
* ``naive``: the fair hand-written loop: plain aiohttp, ``asyncio.Semaphore(slots)`` around
  create + a GET every 5 s until the task ends.

Figures, per arm: makespan / lower bound, where the bound is the list schedule of the tasks'
own durations (from the emulator's records) in creation order on ``slots`` slots, over the
whole run and after the first 20 completions (the rest of the run against the rest of the
oracle's: the cadence learns from those first ends); GETs per
task; detection lag (the clock time from a task's end on the server to the client's outcome)
as a share of the task's duration, p50 / p99, over the tasks that ended after the first 20
(the cadence learns from those). Each figure is printed per run and as a range over runs.

The clock runs ``250 x mean / 320`` times real time by default, so every mean's run takes the
same real time and a millisecond of real delay (the loop, the other process) is the same share
of every task: at one fixed scale, the 120-s tasks' lag would mostly measure the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
from _harness import EmulatorProcess, SharedClock, machine_note, percentile, requests_by, table

from kling_async import KlingClient

PATH = "/v1/videos/video-extend"
QUEUED = 5.0


def ends(report: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """task id -> (its end on the server, its duration), clock seconds."""
    return {
        task_id: (created + queued + running, queued + running)
        for task_id, (created, queued, running) in report["tasks"].items()
    }


def list_schedule(report: dict[str, Any], start: float, slots: int) -> list[float]:
    """When each task of an oracle ends (sorted), starting each task in creation order as a
    slot frees: the last is the lower bound of the makespan."""
    durations = [
        queued + running
        for created, queued, running in sorted(report["tasks"].values())
        if created >= start
    ]
    free = [0.0] * slots
    done = []
    for duration in durations:
        at = heapq.heappop(free)
        done.append(at + duration)
        heapq.heappush(free, at + duration)
    return sorted(done)


async def library(info: dict[str, Any], n: int, slots: int, clock: SharedClock) -> dict[str, float]:
    seen: dict[str, float] = {}
    async with KlingClient(
        api_key=info["api_key"], base_url=info["base_url"], clock=clock, slots=slots
    ) as kling:
        batch = kling.extend_many([{"video_id": info["video_id"]}] * n, slots=slots)
        async for outcome in batch:
            if outcome.task is not None:
                seen[outcome.task.task_id] = clock.time()
    return seen


async def naive(info: dict[str, Any], n: int, slots: int, clock: SharedClock) -> dict[str, float]:
    url = info["base_url"] + PATH
    headers = {"Authorization": f"Bearer {info['api_key']}"}
    gate = asyncio.Semaphore(slots)
    seen: dict[str, float] = {}

    async def extend(session: aiohttp.ClientSession) -> None:
        async with gate:
            body = {"video_id": info["video_id"], "external_task_id": f"ka-{uuid.uuid4().hex}"}
            async with session.post(url, json=body, headers=headers) as r:
                answer = json.loads(await r.read())
            if answer["code"] != 0:
                return
            task_id = answer["data"]["task_id"]
            while True:
                await clock.sleep(5.0)
                async with session.get(f"{url}/{task_id}", headers=headers) as r:
                    answer = json.loads(await r.read())
                if answer["code"] == 0 and answer["data"]["task_status"] in ("succeed", "failed"):
                    seen[task_id] = clock.time()
                    return

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(extend(session) for _ in range(n)))
    return seen


async def run(
    arm: str, mean: float, n: int, slots: int, spread: float, scale: float
) -> dict[str, float]:
    clock = SharedClock(scale)
    async with EmulatorProcess(
        clock, slots=slots, queued=QUEUED, running=mean - QUEUED, spread=spread
    ) as emu:
        start = clock.time()
        body = library if arm == "library" else naive
        seen = await body(emu.info, n, slots, clock)
        makespan = clock.time() - start
        report = await emu.stop()
    truth = ends(report)
    order = sorted(seen, key=lambda task_id: truth[task_id][0])[20:]  # after the first 20
    lags = [(seen[t] - truth[t][0]) / truth[t][1] for t in order]
    oracle = list_schedule(report, start, slots)
    # After the first 20 completions (the cadence learns from those): the rest of the run
    # against the rest of the oracle's.
    twentieth = sorted(seen.values())[19] - start
    return {
        "ratio": makespan / oracle[-1],
        "tail": (makespan - twentieth) / (oracle[-1] - oracle[19]),
        "gets": requests_by(report, "get") / n,
        "lag50": 100 * percentile(lags, 50),
        "lag99": 100 * percentile(lags, 99),
        "done": len(seen),
    }


def spread_of(values: Sequence[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{low:{fmt}}-{high:{fmt}}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--means", default="120,320,900")
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--spread", type=float, default=0.25)
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="clock s per real s (default: 250 x mean / 320, so a real millisecond of loop "
        "delay is the same share of every mean's tasks)",
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    means = [float(m) for m in args.means.split(",")]
    print(f"machine: {machine_note()}")
    print(
        f"{args.tasks} extends x {args.slots} slots, durations +-{args.spread:.0%}, "
        f"scale {'250 x mean / 320' if args.scale is None else format(args.scale, 'g')}, "
        f"{args.runs} runs\n"
    )
    results: dict[tuple[float, str], list[dict[str, float]]] = {}
    for number in range(1, args.runs + 1):
        for mean in means:
            for arm in ("library", "naive") if number % 2 else ("naive", "library"):
                scale = 250.0 * mean / 320.0 if args.scale is None else args.scale
                r = await run(arm, mean, args.tasks, args.slots, args.spread, scale)
                results.setdefault((mean, arm), []).append(r)
                print(
                    f"run {number} mean {mean:g} s {arm:8}: makespan/bound {r['ratio']:.3f} "
                    f"(after 20: {r['tail']:.3f}), "
                    f"GETs/task {r['gets']:.1f}, lag p50 {r['lag50']:.1f}% p99 {r['lag99']:.1f}%"
                    f" ({int(r['done'])}/{args.tasks})",
                    flush=True,
                )
    rows = []
    for (mean, arm), runs in results.items():
        rows.append(
            [
                f"{mean:g} s",
                arm,
                spread_of([r["ratio"] for r in runs], ".3f"),
                spread_of([r["tail"] for r in runs], ".3f"),
                spread_of([r["gets"] for r in runs], ".1f"),
                spread_of([r["lag50"] for r in runs], ".1f"),
                spread_of([r["lag99"] for r in runs], ".1f"),
            ]
        )
    print()
    headers = ["mean", "arm", "makespan/bound", "after 20", "GETs/task", "lag p50 %", "lag p99 %"]
    print(table(headers, rows))


if __name__ == "__main__":
    asyncio.run(main())
