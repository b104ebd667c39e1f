"""Several worker processes draining one batch through a PostgreSQL journal (issue #19).

    .venv/bin/python benchmarks/pg_workers.py [--tasks 1000] [--slots 20] [--workers 4]
        [--scale 250] [--lease 1.0] [--runs 1] [--dsn postgresql://...] [--coordinator DSN]

The emulator serves in this process (its stats are read directly) with ``--slots`` task slots,
tasks of T = 320 clock s (5 s queued + 315 s running) each drawn within +-25 % (seeded), on a
``ScaledClock`` the workers follow (``ScaledClock.following``). ``--workers`` processes
(``_pg_worker.py``) each run ``extend_many`` over the same 1,000 requests with one
``SharedJournal`` batch; without ``--dsn`` a throw-away PostgreSQL server is started from this
machine's binaries (``tests/pg_server.py``). Two arms per run: all workers to the end, and
one worker killed with SIGKILL once half the tasks exist. Each arm runs twice: workers given no
slot hint (each gate learns the account alone), and each given its share (slots / workers).
``--coordinator`` is passed to every worker's ``KlingClient(coordinator=...)`` as is; one that
starts with ``?`` is options for the journal's database (``--coordinator '?kling_lease=2'``: the
coordinator's lease, 2 real s, 500 clock s at x250).

Figures: duplicates (tasks beyond the first per request), lost (requests not ``succeed`` in
the journal at the end), the share of creates refused with 1303 after the first clock minute,
and makespan / lower bound, the bound being the greedy list schedule of the emulator's actual
task durations (creation order, each started the moment one of ``--slots`` frees). The
makespan runs from the first create to the last outcome journalled.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import heapq
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from _harness import machine_note, table

from kling_async import ScaledClock, SharedJournal
from kling_async.testing import Durations, KlingEmulator

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_pg_worker.py")
QUEUED, RUNNING, SPREAD = 5.0, 315.0, 0.25


def list_schedule(durations: list[float], slots: int) -> float:
    """When an oracle running these tasks in this order, back to back on ``slots``, ends."""
    free = [0.0] * slots
    end = 0.0
    for duration in durations:
        at = heapq.heappop(free)
        end = max(end, at + duration)
        heapq.heappush(free, at + duration)
    return end


def coordinator_of(option: str | None, dsn: str) -> str | None:
    """``--coordinator``: a DSN, or ``?options`` for the journal's own database."""
    if option and option.startswith("?"):
        return dsn + ("&" if "?" in dsn else "?") + option[1:]
    return option


async def arm(
    args: argparse.Namespace, dsn: str, batch: str, *, kill: bool, share: bool
) -> dict[str, Any]:
    rng = random.Random(0)

    def draw(_body: Any) -> tuple[float, float]:
        return (QUEUED * rng.uniform(1 - SPREAD, 1 + SPREAD),
                RUNNING * rng.uniform(1 - SPREAD, 1 + SPREAD))  # fmt: skip

    clock = ScaledClock(args.scale)
    emu = KlingEmulator(clock=clock, slot_limit=args.slots, durations=Durations.per_task(draw))
    attempts: list[tuple[float, bool]] = []  # (clock time, refused) of every create
    create = emu._core.create

    def timed(*a: Any, **kw: Any) -> Any:  # instrumentation only
        try:
            data = create(*a, **kw)
        except Exception:
            attempts.append((clock.time(), True))
            raise
        attempts.append((clock.time(), False))
        return data

    emu._core.create = timed  # type: ignore[method-assign]
    async with emu:
        seed = emu.add_video()
        config = {
            "client": emu.client_kwargs("jwt"), "dsn": dsn, "batch": batch, "n": args.tasks,
            "video_id": seed.video_id, "lease": args.lease, "scale": args.scale,
            "origin": clock.origin, "coordinator": coordinator_of(args.coordinator, dsn),
            "slots": args.slots // args.workers if share else None,
        }  # fmt: skip
        start = clock.time()
        wall0 = time.perf_counter()
        argv = (sys.executable, str(WORKER), json.dumps(config))
        env = {"PYTHONPATH": str(ROOT), "PATH": ""}
        out = asyncio.subprocess.DEVNULL
        workers = [
            await asyncio.create_subprocess_exec(*argv, stdout=out, env=env)
            for _ in range(args.workers)
        ]
        killed_at = None
        if kill:
            for _ in range(1_000_000):  # real time: until half the tasks exist
                if emu.stats.created >= args.tasks // 2:
                    break
                await asyncio.sleep(0.01)
            workers[0].send_signal(signal.SIGKILL)
            killed_at = clock.time() - start
        codes = [await w.wait() for w in workers]
        wall = time.perf_counter() - wall0
        tasks = [t for t in emu.tasks.values() if t.kind == "video-extend"]
    entries = await SharedJournal.read(dsn, batch)
    per_request = collections.Counter(str((t.body or {}).get("prompt")) for t in tasks)
    durations = [t.queued + t.running for t in sorted(tasks, key=lambda t: t.created_at)]
    bound = list_schedule(durations, args.slots)
    # From the first create (the workers' start-up, a second of imports each, is not the
    # batch's), to the last outcome journalled.
    first = min((at for at, _ in attempts), default=start)
    makespan = max((e.updated_at for e in entries), default=first) - first
    later = [refused for at, refused in attempts if at - first >= 60.0]
    return {
        "name": f"{'no hint' if not share else f'slots={args.slots // args.workers} each'}"
        f"{', 1 killed' if kill else ''}",
        "exit codes": " ".join(str(c) for c in sorted(codes)),
        "killed at, clock s": killed_at if killed_at is not None else "-",
        "tasks created": len(tasks),
        "duplicates": sum(n - 1 for n in per_request.values()),
        "lost": args.tasks - sum(1 for e in entries if e.outcome == "succeed"),
        "creates sent": len(attempts),
        "refused 1303": sum(1 for _, refused in attempts if refused),
        "1303 after 1st min, %": 100.0 * sum(later) / max(1, len(later)),
        "makespan, clock s": makespan,
        "lower bound, clock s": bound,
        "makespan / bound": f"{makespan / bound:.3f}",
        "wall, s": wall,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scale", type=float, default=250.0, help="clock s per real s")
    parser.add_argument("--lease", type=float, default=1.0, help="real seconds")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--dsn", help="a database to use (default: a throw-away server)")
    parser.add_argument(
        "--coordinator", help="passed to KlingClient(coordinator=...); ?options: the journal's DSN"
    )
    parser.add_argument("--arms", default="hint,share,hint-kill,share-kill")
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    print(f"{args.tasks} extends, {args.slots} slots, {args.workers} workers, T = "
          f"{QUEUED + RUNNING:g} clock s +-{SPREAD:.0%}, scale {args.scale:g}, lease "
          f"{args.lease:g} real s, coordinator: {args.coordinator or 'none'}\n")  # fmt: skip
    with contextlib.ExitStack() as stack:
        dsn = args.dsn
        if dsn is None:
            sys.path.insert(0, str(ROOT))
            from tests.pg_server import PostgresServer, find_bindir

            bindir = find_bindir()
            if bindir is None:
                raise SystemExit("no PostgreSQL server binaries here: give --dsn")
            dsn = stack.enter_context(PostgresServer(bindir)).dsn
        for run in range(args.runs):
            results = []
            for name in args.arms.split(","):
                batch = f"bench-{time.time():.0f}-{run}-{name}"
                result = await arm(
                    args, dsn, batch, kill=name.endswith("kill"), share=name.startswith("share")
                )
                results.append(result)
                ratio = result["makespan / bound"]
                print(f"  run {run + 1}, {result['name']}: {ratio}", flush=True)
            keys = list(results[0])[1:]
            rows = [[k, *(r[k] for r in results)] for k in keys]
            print(table(["", *(r["name"] for r in results)], rows) + "\n", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
