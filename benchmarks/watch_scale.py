"""Watching 10,000 tasks from one process (issue #4).

    .venv/bin/python benchmarks/watch_scale.py [--tasks 10000] [--variant both]

The emulator runs in a separate process (``_emulator_proc.py``), on a clock shared with this
one (``SharedClock``: ``ScaledClock`` arithmetic from one origin, so both processes read the
same scaled time). Every task is a video-extend that queues 5 s and runs 315 s of clock time,
each drawn within +-15% (so status changes do not line up with the poll cadence). This process
creates ``--tasks`` tasks through ``KlingClient.extend_video`` (paced, 50 at a time) and adds
each to one open-ended ``client.watch()`` as soon as it is created, so that all of them are
followed at once; a ticker coroutine measures event-loop lag meanwhile. Printed, for polling
only and with signed callbacks received by ``kling_async.webhooks.aiohttp_handler`` (which
feeds ``client.scheduler``), side by side:

* RSS growth of this process, from before the first create to its peak while watching (it
  includes the harness's own per-task bookkeeping: two flat arrays and an id -> index dict);
* CPU time of this process and of the emulator, and requests per task;
* detection lag: ``StatusChange.at`` minus the moment the emulator's task record says the
  status changed (created_at + queued, + running), both on the shared clock, converted to real
  milliseconds as clock seconds / scale x 1000. The emulator logs the clock time of every GET
  it answers, so each change first seen by a poll is also compared with the poll interval in
  force (the gap between that poll and the one before it); with callbacks, the moment each
  callback reached the receiver is shown too;
* event-loop lag p50/p99/max (a 10 ms ticker).

Why the clock runs only 2.5x with polling: 10,000 tasks x ~18 polls is ~180,000 GETs, each
~0.5 ms of CPU in this process and ~0.4 ms in the emulator; on 2 shared cores that is about
2,000 polls per real second, and 10,000 tasks in their finishing window ask for 1,000 polls
per clock second. A faster clock only measures the backlog. With callbacks (~2.5 polls and 3
callbacks per task) the clock runs 8x. Creates are paced at 300/s in both (33 s for 10,000,
well within a task's life, so all are followed at once): as fast as possible, the creates and
the first polls or callbacks they trigger saturate both processes for the first seconds.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import gc
import math
import time
from collections.abc import Callable
from typing import Any

from _harness import (
    EmulatorProcess,
    LoopLag,
    SharedClock,
    machine_note,
    median,
    percentile,
    requests_by,
    rss_mb,
    table,
)
from aiohttp import web

from kling_async import KlingClient, TaskStatus
from kling_async.webhooks import CallbackEvent, CallbackReceiver, aiohttp_handler

QUEUED, RUNNING = 5.0, 315.0
NEAR_INTERVAL = 10.0  # the cadence's interval around a 320-s extend's expected end, clock s
STATUSES = (TaskStatus.PROCESSING, TaskStatus.SUCCEED)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"kling-async-benchmark-secret-32b").decode()


class CallbackServer:
    """An aiohttp app on 127.0.0.1 that hands callbacks to ``client.scheduler``."""

    def __init__(
        self, client: KlingClient, on_event: Callable[[CallbackEvent], None] | None = None
    ) -> None:
        self.receiver = CallbackReceiver(secret=WEBHOOK_SECRET, client=client, on_event=on_event)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> CallbackServer:
        app = web.Application()
        app.router.add_post("/kling-callback", aiohttp_handler(self.receiver))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/kling-callback"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def run(
    variant: str, n: int, scale: float, budget: float | None, spread: float, rate: float
) -> dict[str, Any]:
    clock = SharedClock(scale)
    callbacks = variant == "callbacks"
    async with EmulatorProcess(
        clock,
        queued=QUEUED,
        running=RUNNING,
        spread=spread,
        log_gets=True,
        webhook_secret=WEBHOOK_SECRET if callbacks else None,
    ) as emu:
        info = emu.info
        async with KlingClient(
            api_key=info["api_key"],
            base_url=info["base_url"],
            clock=clock,
            max_polls_per_second=budget,
            # The emulator has no slot limit: say so, or the client's gate would hold creates at
            # its 1,000-task ceiling for an unknown limit and the 10,000 would never run at once.
            slots=n,
        ) as kling:
            index: dict[str, int] = {}
            # Clock times, per task, of each status change as yielded by the watch and (with
            # callbacks) as received: flat arrays, so that the harness adds little to the RSS.
            seen = {s: array.array("d", [math.nan]) * n for s in STATUSES}
            arrived = {s: array.array("d", [math.nan]) * n for s in STATUSES}

            def note_arrival(event: CallbackEvent) -> None:
                i = index.get(event.task.task_id)
                column = arrived.get(event.task.task_status)
                if i is not None and column is not None:
                    column[i] = clock.time()

            server = CallbackServer(kling, note_arrival)
            async with server:
                await kling.get_task(info["parent_task_id"], kind="text2video")  # warm up
                callback_url = server.url if callbacks else None
                gc.collect()
                rss0, cpu0, emu_cpu0 = rss_mb(), time.process_time(), emu.cpu()
                wall0 = time.perf_counter()
                async with LoopLag() as lag:
                    watch = kling.watch(open_ended=True)

                    async def consume() -> None:
                        async for change in watch:
                            column = seen.get(change.current)
                            if column is not None:
                                column[index[change.task_id]] = change.at

                    consumer = asyncio.ensure_future(consume())
                    next_i = 0

                    async def create() -> None:
                        nonlocal next_i
                        while next_i < n:
                            i, next_i = next_i, next_i + 1
                            if rate:  # the i-th create leaves i / rate seconds after the first
                                await asyncio.sleep(wall0 + i / rate - time.perf_counter())
                            task = await kling.extend_video(
                                info["video_id"], callback_url=callback_url
                            )
                            index[task.task_id] = i
                            watch.add(task)

                    await asyncio.gather(*(create() for _ in range(50)))
                    created_in = time.perf_counter() - wall0
                    watch.seal()
                    await consumer
                wall = time.perf_counter() - wall0
                cpu = time.process_time() - cpu0
                emu_cpu = emu.cpu() - emu_cpu0
                accepted = server.receiver.accepted
        report = await emu.stop()
    return analyse(
        report,
        clock,
        index,
        seen,
        arrived,
        variant=variant,
        n=n,
        scale=scale,
        rate=rate or "max",
        rss=(rss0, lag.peak_rss),
        cpu=cpu,
        emu_cpu=emu_cpu,
        wall=wall,
        created_in=created_in,
        loop_lag=(lag.p(99), max(lag.lags) * 1000),
        callbacks_accepted=accepted,
    )


def analyse(
    report: dict[str, Any],
    clock: SharedClock,
    index: dict[str, int],
    seen: dict[TaskStatus, array.array[float]],
    arrived: dict[TaskStatus, array.array[float]],
    **figures: Any,
) -> dict[str, Any]:
    """Detection lags (real ms) and poll intervals in force, from the emulator's records."""
    lags: list[float] = []
    by_status: dict[TaskStatus, list[float]] = {s: [] for s in STATUSES}
    by_status_delivery: dict[TaskStatus, list[float]] = {s: [] for s in STATUSES}
    excess: list[float] = []  # lag minus the poll interval in force, real ms
    intervals: list[float] = []
    deliveries: list[float] = []  # emulator change -> callback received, real ms
    missed = 0
    polls = []
    gets: dict[str, list[float]] = report["gets"]
    for task_id, (created_at, queued, running) in report["tasks"].items():
        i = index.get(task_id)
        if i is None:
            continue
        times = sorted(gets.get(task_id, ()))
        polls.append(len(times))
        for status, changed_at in (
            (TaskStatus.PROCESSING, created_at + queued),
            (TaskStatus.SUCCEED, created_at + queued + running),
        ):
            at = seen[status][i]
            if math.isnan(at):  # the watch never yielded this status (went past it)
                missed += 1
                continue
            lag = clock.real_ms(at - changed_at)
            lags.append(lag)
            by_status[status].append(lag)
            if not math.isnan(arrived[status][i]):
                delivery = clock.real_ms(arrived[status][i] - changed_at)
                deliveries.append(delivery)
                by_status_delivery[status].append(delivery)
            later = [t for t in times if t >= changed_at]
            if later and later[0] <= at:  # a poll saw it first
                earlier = [t for t in times if t < changed_at]
                previous = earlier[-1] if earlier else created_at
                interval = clock.real_ms(later[0] - previous)
                intervals.append(interval)
                excess.append(lag - interval)
    n = figures["n"]
    return {
        **figures,
        "lag_p50": percentile(lags, 50),
        "lag_p99": percentile(lags, 99),
        "lag_max": max(lags) if lags else math.nan,
        "lag_p99_by_status": " / ".join(f"{percentile(v, 99):,.0f}" for v in by_status.values()),
        "delivery_p99_by_status": " / ".join(
            f"{percentile(v, 99):,.0f}" for v in by_status_delivery.values()
        ),
        "delivery_p50": percentile(deliveries, 50),
        "delivery_p99": percentile(deliveries, 99),
        "excess_p99": percentile(excess, 99),
        "by_poll": len(excess),
        "interval_p50": median(intervals),
        "near_interval": clock.real_ms(NEAR_INTERVAL),
        "missed": missed,
        "polls_per_task": sum(polls) / max(1, len(polls)),
        "polls_max": max(polls) if polls else 0,
        "requests_per_task": (requests_by(report, "create") + requests_by(report, "get")) / n,
        "callbacks": report.get("callbacks", 0),
        "callback_errors": report.get("callback_errors", 0),
    }


def print_results(results: list[dict[str, Any]], budget: float | None, spread: float) -> None:
    rows: list[list[object]] = []

    def row(label: str, key: str, target: str = "", fmt: Any = None) -> None:
        values = [r[key] if fmt is None else fmt(r) for r in results]
        rows.append([label, *values, target])

    row("clock scale (clock s per real s)", "scale")
    row("creates per real second (paced)", "rate")
    row("RSS before the first create, MiB", "rss", fmt=lambda r: r["rss"][0])
    row("RSS growth to peak, MiB", "rss", "<= 30", fmt=lambda r: r["rss"][1] - r["rss"][0])
    row("client CPU, s", "cpu")
    row("  per request or callback, us", "cpu", fmt=lambda r: _per_request_us(r, "cpu"))
    row("emulator CPU per request, us", "emu_cpu", fmt=lambda r: _per_request_us(r, "emu_cpu"))
    row("wall time, s", "wall")
    row("  of which creating the tasks, s", "created_in")
    row("requests per task (create + GETs)", "requests_per_task")
    row("polls per task, mean", "polls_per_task", "<= 25")
    row("polls per task, max", "polls_max")
    row("callbacks accepted", "callbacks_accepted")
    row("detection lag p50, real ms", "lag_p50")
    row("detection lag p99, real ms", "lag_p99", "see below")
    row("detection lag max, real ms", "lag_max")
    row("  p99 processing / succeed, real ms", "lag_p99_by_status")
    row("  cadence interval near the end, real ms", "near_interval")
    row("  changes first seen by a poll", "by_poll")
    row("  their poll interval in force p50, ms", "interval_p50")
    row("  p99 of (lag - interval in force), ms", "excess_p99", "<= 50")
    row("  callback received p50, real ms", "delivery_p50")
    row("  callback received p99, real ms", "delivery_p99")
    row("    p99 processing / succeed", "delivery_p99_by_status")
    row("statuses never yielded", "missed", "0")
    row("event-loop lag p99, ms", "loop_lag", "<= 20", fmt=lambda r: r["loop_lag"][0])
    row("event-loop lag max, ms", "loop_lag", fmt=lambda r: r["loop_lag"][1])
    headers = ["", *(f"{r['variant']} ({r['n']:,} tasks)" for r in results), "target"]
    print(table(headers, rows))
    print(
        "\nLags are measured on the shared clock and shown in real ms: clock seconds / scale x"
        " 1000.\nTargets: detection lag p99 <= interval in force + 50 ms polling, <= 50 ms with"
        " callbacks.\n"
        f"Durations: queued {QUEUED:g} s, running {RUNNING:g} s, each +-{spread:.0%} (uniform);"
        f" poll budget max_polls_per_second={budget} (clock s); other settings default."
    )


def _per_request_us(r: dict[str, Any], key: str) -> float:
    requests = r["requests_per_task"] * r["n"] + r["callbacks"]
    return float(r[key]) / requests * 1e6 if requests else math.nan


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--scale", type=float, default=2.5, help="clock s per real s, polling (default 2.5)"
    )
    parser.add_argument(
        "--callback-scale", type=float, default=8.0, help="the same with callbacks (default 8)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=2000.0,
        help="client max_polls_per_second (clock s); 0 for none (default 2000)",
    )
    parser.add_argument("--spread", type=float, default=0.15, help="duration spread, +-fraction")
    parser.add_argument(
        "--create-rate",
        type=float,
        default=300.0,
        help="creates per real second, 0 for as fast as possible (default 300)",
    )
    parser.add_argument("--variant", choices=("polling", "callbacks", "both"), default="both")
    args = parser.parse_args()
    budget = args.budget or None
    print(f"machine: {machine_note()}")
    print("emulator: KlingEmulator in a separate process, clock shared through SharedClock\n")
    results = []
    if args.variant in ("polling", "both"):
        results.append(
            await run("polling", args.tasks, args.scale, budget, args.spread, args.create_rate)
        )
    if args.variant in ("callbacks", "both"):
        results.append(
            await run(
                "callbacks",
                args.tasks,
                args.callback_scale,
                budget,
                args.spread,
                args.create_rate,
            )
        )
    print_results(results, budget, args.spread)


if __name__ == "__main__":
    asyncio.run(main())
