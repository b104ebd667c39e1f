"""The same batch written without this library, side by side with kling_async (issue #4).

    .venv/bin/python benchmarks/naive.py [--tasks 100] [--slots 20] [--scale 50]

What a user without kling_async writes: ``asyncio.gather`` over one coroutine per video, each
POSTing its create with plain aiohttp and then GETting the task every 5 seconds until it ends.
Nothing tells it how many task slots the account has, so most creates are refused with 1303 at
first; it retries them every 5 seconds (without a retry, N - slots of the N creates simply
fail, which is the first row of 1303s below). Its sleeps go through the same scaled clock as
everything else (``clock.sleep(5)`` standing in for ``asyncio.sleep(5)``).

The emulator runs in a separate process with ``--slots`` slots and T = 320 clock s per task,
exactly as in ``batch_makespan.py``; kling_async's ``extend_many`` (polling only, then with
callbacks) runs the same batch in the same invocation, for the side-by-side table.

Why 100 tasks and not 1,000: the naive loop sends about (N - slots) / 5 refused creates per
clock second for most of the batch; with N = 1,000 that is ~1.6 million requests, tens of
minutes of CPU on 2 cores. ``--tasks 1000 --scale 5`` runs it in about an hour.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
from _harness import EmulatorProcess, SharedClock, machine_note
from batch_makespan import QUEUED, RUNNING, T, library_batch, results_table, summarise

PATH = "/v1/videos/video-extend"
POLL_EVERY = 5.0


async def naive_batch(n: int, slots: int, scale: float) -> dict[str, Any]:
    clock = SharedClock(scale)
    first_refusals = 0
    async with EmulatorProcess(clock, slots=slots, queued=QUEUED, running=RUNNING) as emu:
        info = emu.info
        url = info["base_url"] + PATH
        headers = {"Authorization": f"Bearer {info['api_key']}"}

        async def extend(session: aiohttp.ClientSession) -> str:
            nonlocal first_refusals
            body = {"video_id": info["video_id"], "external_task_id": f"ka-{uuid.uuid4().hex}"}
            attempt = 0
            while True:  # create; on 1302/1303 wait 5 s and try again
                async with session.post(url, json=body, headers=headers) as r:
                    answer = json.loads(await r.read())
                if answer["code"] == 0:
                    break
                if answer["code"] not in (1302, 1303):
                    raise RuntimeError(answer)
                first_refusals += attempt == 0
                attempt += 1
                await clock.sleep(POLL_EVERY)
            task_id = answer["data"]["task_id"]
            while True:  # poll every 5 s until it ends
                await clock.sleep(POLL_EVERY)
                async with session.get(f"{url}/{task_id}", headers=headers) as r:
                    answer = json.loads(await r.read())
                if answer["code"] != 0:
                    continue
                status: str = answer["data"]["task_status"]
                if status in ("succeed", "failed"):
                    return status

        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            cpu0, emu_cpu0, wall0 = time.process_time(), emu.cpu(), time.perf_counter()
            start = clock.time()
            statuses = await asyncio.gather(*(extend(session) for _ in range(n)))
            makespan = clock.time() - start
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            emu_cpu = emu.cpu() - emu_cpu0
        report = await emu.stop()
    outcomes: dict[str, int] = {}
    for status in statuses:
        outcomes[status] = outcomes.get(status, 0) + 1
    result = summarise(
        report,
        name="naive aiohttp, 5 s loop",
        n=n,
        slots=slots,
        scale=scale,
        makespan=makespan,
        cpu=cpu,
        emu_cpu=emu_cpu,
        wall=wall,
        outcomes=outcomes,
        callbacks_accepted=0,
    )
    result["first_refusals"] = first_refusals
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--scale", type=float, default=50.0, help="clock s per real s")
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    print(
        "emulator: KlingEmulator in a separate process, clock shared through SharedClock; "
        f"T = {T:g} clock s per task, scale {args.scale:g}\n"
    )
    naive = await naive_batch(args.tasks, args.slots, args.scale)
    polling = await library_batch(args.tasks, args.slots, args.scale, callbacks=False)
    callbacks = await library_batch(args.tasks, args.slots, args.scale, callbacks=True)
    print(results_table([naive, polling, callbacks]))
    print(
        f"\nnaive: {naive['first_refusals']} of its {args.tasks} first create attempts were "
        "refused with 1303 (what a script without a retry loses outright); "
        f"requests per task: naive / kling_async polling = "
        f"{naive['requests_per_task'] / polling['requests_per_task']:.1f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
