"""The emulator in its own process, for the benchmarks (started by ``_harness.EmulatorProcess``).

Serves a ``KlingEmulator`` on the clock origin it is given, prints one JSON line (URL, keys, a
seed video), and on SIGTERM writes its report to ``--report``: requests by (method, route,
HTTP status), every task's created/queued/running times, its own CPU time, and with
``--log-gets`` the clock time of every GET of every task (to know the poll interval in force
when a change was detected).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

from _harness import SharedClock

from kling_async.testing import Durations, KlingEmulator


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    clock = SharedClock(args.scale, args.mono0, args.epoch0)
    durations = Durations(queued=args.queued, running=args.running)
    if args.spread:
        # Each time drawn uniformly within +-spread of its mean (seeded), so that the moments
        # tasks change status do not line up with the poll cadence.
        rng = random.Random(0)
        spread = args.spread

        def draw(_body: Any) -> tuple[float, float]:
            return (
                args.queued * rng.uniform(1 - spread, 1 + spread),
                args.running * rng.uniform(1 - spread, 1 + spread),
            )

        durations = Durations.per_task(draw)
    emu = KlingEmulator(
        clock=clock,
        slot_limit=args.slots,
        durations=durations,
        webhook_secret=args.webhook_secret,
    )
    gets: dict[str, list[float]] = collections.defaultdict(list)
    if args.log_gets:
        # Instrumentation only: note when each task is read (the server side of every poll).
        core = emu._core
        get = core.get

        def logged_get(kind: Any, ident: str, *args: Any, **kwargs: Any) -> Any:
            gets[ident].append(clock.time())
            return get(kind, ident, *args, **kwargs)

        setattr(core, "get", logged_get)  # noqa: B010 - an instance attribute, on purpose

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with emu:
        seed = emu.add_video(5.0)
        print(
            json.dumps(
                {
                    "url": emu.url,
                    **emu.client_kwargs("key"),
                    "video_id": seed.video_id,
                    "parent_task_id": seed.task_id,
                }
            ),
            flush=True,
        )
        await stop.wait()
        report = {
            "cpu": time.process_time(),
            "created": emu.stats.created,
            "max_slots_in_use": emu.stats.max_slots_in_use,
            "requests": [[*key, n] for key, n in emu.stats.requests.items()],
            "tasks": {
                t.task_id: [t.created_at, t.queued, t.running]
                for t in emu.tasks.values()
                if t.kind == "video-extend"
            },
            "callbacks": len(emu.callbacks),
            "callback_errors": sum(1 for c in emu.callbacks if c.http_status != 200),
            "gets": gets,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--mono0", type=float, required=True)
    parser.add_argument("--epoch0", type=float, required=True)
    parser.add_argument("--queued", type=float, default=5.0)
    parser.add_argument("--running", type=float, default=315.0)
    parser.add_argument("--spread", type=float, default=0.0)
    parser.add_argument("--slots", type=int, default=None)
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--log-gets", action="store_true")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    report = asyncio.run(serve(args))
    Path(args.report).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
