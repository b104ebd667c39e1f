"""Makespan of a bulk extend against its lower bound (issue #4).

    .venv/bin/python benchmarks/batch_makespan.py [--tasks 1000] [--slots 20] [--scale 250]

The emulator runs in a separate process (``_emulator_proc.py``) with ``--slots`` task slots,
every task taking the same T = 320 s of clock time (5 s queued + 315 s running), on a clock
shared with this process (``SharedClock``: ``ScaledClock`` arithmetic from one origin). This
process runs ``client.extend_many(requests, journal=<temp file>, slots=20)`` with default
client settings, polling only, then again with every request carrying a ``callback_url`` served
here by ``kling_async.webhooks.aiohttp_handler`` (signed callbacks feed ``client.scheduler``).

makespan = clock time from the start of the batch to its last outcome;
lower bound = ceil(N / slots) x T (each slot runs its tasks back to back, nothing in between).
Requests per task count every request the emulator answered (creates, refused creates, GETs),
divided by N. The plain-aiohttp way of doing the same is in ``naive.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import (
    EmulatorProcess,
    SharedClock,
    machine_note,
    refusals_1303,
    requests_by,
    table,
)
from watch_scale import WEBHOOK_SECRET, CallbackServer

from kling_async import KlingClient

QUEUED, RUNNING = 5.0, 315.0
T = QUEUED + RUNNING


async def library_batch(
    n: int, slots: int, scale: float, *, callbacks: bool, journal: bool = True
) -> dict[str, Any]:
    """One ``extend_many`` run; its makespan and what the emulator saw."""
    clock = SharedClock(scale)
    async with EmulatorProcess(
        clock,
        slots=slots,
        queued=QUEUED,
        running=RUNNING,
        webhook_secret=WEBHOOK_SECRET if callbacks else None,
    ) as emu:
        info = emu.info
        with tempfile.TemporaryDirectory() as tmp:
            async with KlingClient(
                api_key=info["api_key"], base_url=info["base_url"], clock=clock
            ) as kling:
                server = CallbackServer(kling)
                async with server:
                    request: dict[str, Any] = {"video_id": info["video_id"]}
                    if callbacks:
                        request["callback_url"] = server.url
                    outcomes: dict[str, int] = {}
                    cpu0, emu_cpu0, wall0 = time.process_time(), emu.cpu(), time.perf_counter()
                    start = clock.time()
                    batch = kling.extend_many(
                        [dict(request) for _ in range(n)],
                        journal=Path(tmp) / "batch.sqlite" if journal else None,
                        slots=slots,
                    )
                    async for outcome in batch:
                        outcomes[outcome.outcome] = outcomes.get(outcome.outcome, 0) + 1
                    makespan = clock.time() - start
                    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                    emu_cpu = emu.cpu() - emu_cpu0
                    accepted = server.receiver.accepted
        report = await emu.stop()
    return summarise(
        report,
        name="kling_async, callbacks" if callbacks else "kling_async, polling",
        n=n,
        slots=slots,
        scale=scale,
        makespan=makespan,
        cpu=cpu,
        emu_cpu=emu_cpu,
        wall=wall,
        outcomes=outcomes,
        callbacks_accepted=accepted,
    )


def summarise(report: dict[str, Any], **figures: Any) -> dict[str, Any]:
    n, slots = figures["n"], figures["slots"]
    bound = math.ceil(n / slots) * T
    creates = requests_by(report, "create")
    gets = requests_by(report, "get")
    return {
        **figures,
        "bound": bound,
        "ratio": figures["makespan"] / bound,
        "creates_sent": creates,
        "refused_1303": refusals_1303(report),
        "gets": gets,
        "requests_per_task": (creates + gets) / n,
        "created": report.get("created", 0),
        "max_slots_in_use": report.get("max_slots_in_use", 0),
        "callbacks": report.get("callbacks", 0),
    }


def results_table(results: list[dict[str, Any]]) -> str:
    rows: list[list[object]] = []
    for r in results:
        r["shape"] = f"{r['n']:,} x {r['slots']}"
        r["ratio_text"] = f"{r['ratio']:.3f}"
        r["outcome_text"] = " ".join(f"{k}={v}" for k, v in sorted(r["outcomes"].items()))

    def row(label: str, key: str, target: str = "") -> None:
        rows.append([label, *(r[key] for r in results), target])

    row("tasks x slots", "shape")
    row("makespan, clock s", "makespan")
    row("lower bound ceil(N/slots) x T, clock s", "bound")
    row("makespan / lower bound", "ratio_text", "<= 1.15 polling, <= 1.05 callbacks")
    row("requests per task (all creates + GETs)", "requests_per_task")
    row("creates sent", "creates_sent")
    row("  refused with 1303", "refused_1303")
    row("GETs", "gets")
    row("callbacks delivered", "callbacks")
    row("tasks created", "created")
    row("peak slots in use (emulator)", "max_slots_in_use")
    row("outcomes", "outcome_text")
    row("client CPU, s", "cpu")
    row("emulator CPU, s", "emu_cpu")
    row("wall time, s", "wall")
    return table(["", *(r["name"] for r in results), "target"], rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--scale", type=float, default=250.0, help="clock s per real s")
    parser.add_argument("--variant", choices=("polling", "callbacks", "both"), default="both")
    parser.add_argument("--no-journal", action="store_true", help="run without a journal")
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    print(
        "emulator: KlingEmulator in a separate process, clock shared through SharedClock; "
        f"T = {T:g} clock s per task, scale {args.scale:g} (T = {T / args.scale * 1000:.0f} "
        f"real ms); journal: {'none' if args.no_journal else 'SQLite in a temp dir'}\n"
    )
    variants = (False, True) if args.variant == "both" else (args.variant == "callbacks",)
    results = [
        await library_batch(
            args.tasks, args.slots, args.scale, callbacks=cb, journal=not args.no_journal
        )
        for cb in variants
    ]
    print(results_table(results))


if __name__ == "__main__":
    asyncio.run(main())
