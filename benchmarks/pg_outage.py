"""Two ``kling-async batch`` workers of one PostgreSQL journal, the database down mid-batch
(issue #25).

    .venv/bin/python benchmarks/pg_outage.py [--tasks 1000] [--slots 20] [--scale 500]
        [--outages 5,30,90] [--bound 60]

The emulator serves in this process with ``--slots`` task slots, tasks of T = 320 clock s (5 s
queued + 315 s running) each drawn within +-25 % (seeded), on a ``ScaledClock`` the workers
follow (``--time-scale``/``--time-origin``); it accepts a duplicate ``external_task_id``, so a
create sent twice makes two tasks and is counted. A throw-away PostgreSQL server is started
from this machine's binaries (``tests/pg_server.py``). Per arm, two CLI workers
(``python -m kling_async.cli batch FILE --journal DSN --batch NAME --slots SLOTS/2 --db-outage
BOUND``) start together; once a third of the tasks exist the server is shut down (a fast
shutdown, as a restart or fail-over does), kept down ``OUTAGE`` real seconds, and started again
on the same data. An outage shorter than ``--bound`` must be a pause: both workers exit 0. A
longer one must stop both with exit 5 (and one line on stderr) once the bound has passed; the
same command is then run again by two workers, which must complete the batch.

Figures: exit codes (of the run hit by the outage, then of the run again, if any), seconds
from the shutdown to the workers' exits, tasks created, duplicates (tasks beyond the first per
request), lost (requests not ``succeed`` in the journal at the end), outcomes yielded fresh
(not ``from_journal``) summed over the workers (one per request: each is yielded by one
worker), tracebacks and "Task exception was never retrieved" on the workers' stderr, and wall
time of the arm.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import machine_note, table

from kling_async import ScaledClock, SharedJournal
from kling_async.testing import Durations, KlingEmulator

ROOT = Path(__file__).resolve().parents[1]
QUEUED, RUNNING, SPREAD = 5.0, 315.0, 0.25

sys.path.insert(0, str(ROOT))
from tests.pg_server import PostgresServer, find_bindir  # noqa: E402


class Worker:
    """One ``kling-async batch`` process, and what it wrote (stdout: JSON Lines)."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.ended_at = 0.0
        self.out = self.err = ""

    async def start(self, argv: list[str], env: dict[str, str]) -> None:
        pipe = asyncio.subprocess.PIPE
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdout=pipe, stderr=pipe, env=env
        )

    async def wait(self) -> int:
        assert self.process is not None
        out, err = await self.process.communicate()
        self.ended_at = time.perf_counter()
        self.out, self.err = out.decode(), err.decode(errors="replace")
        assert self.process.returncode is not None
        return self.process.returncode

    def fresh(self) -> list[str]:
        lines = [json.loads(line) for line in self.out.splitlines() if line]
        return [o["key"] for o in lines if o["type"] == "outcome" and not o["from_journal"]]


async def arm(
    args: argparse.Namespace, server: PostgresServer, folder: Path, outage: float
) -> dict[str, Any]:
    rng = random.Random(0)

    def draw(_body: Any) -> tuple[float, float]:
        return (QUEUED * rng.uniform(1 - SPREAD, 1 + SPREAD),
                RUNNING * rng.uniform(1 - SPREAD, 1 + SPREAD))  # fmt: skip

    clock = ScaledClock(args.scale)
    batch = f"outage-{outage:g}-{time.time():.0f}"
    emu = KlingEmulator(
        clock=clock,
        slot_limit=args.slots,
        durations=Durations.per_task(draw),
        duplicate_external_id="accept",
    )
    async with emu:
        seed = emu.add_video()
        source = folder / f"{batch}.jsonl"
        rows = [{"video_id": seed.video_id, "prompt": f"p{i}"} for i in range(args.tasks)]
        source.write_text("".join(json.dumps(row) + "\n" for row in rows))
        creds = emu.client_kwargs("jwt")
        env = {
            "PYTHONPATH": str(ROOT), "PATH": "", "COLUMNS": "160",
            "KLING_BASE_URL": creds["base_url"], "KLING_ACCESS_KEY": creds["access_key"],
            "KLING_SECRET_KEY": creds["secret_key"],
        }  # fmt: skip
        argv = [
            sys.executable, "-m", "kling_async.cli", "batch", str(source), "--journal", server.dsn,
            "--batch", batch, "--slots", str(args.slots // 2), "--db-outage", str(args.bound),
            "--time-scale", str(args.scale), "--time-origin", repr(clock.origin), "--json",
        ]  # fmt: skip
        wall0 = time.perf_counter()
        first = [Worker() for _ in range(2)]
        for worker in first:
            await worker.start(argv, env)
        while emu.stats.created < args.tasks // 3:  # real time: a third of the batch under way
            if any(w.process is not None and w.process.returncode is not None for w in first):
                raise SystemExit(f"a worker ended before the outage: {[w.err for w in first]}")
            await asyncio.sleep(0.01)
        down_at = time.perf_counter()
        await asyncio.to_thread(server.halt)
        waits = [asyncio.ensure_future(w.wait()) for w in first]
        await asyncio.wait(waits, timeout=outage)
        # Down the whole outage, even once both workers stopped (past the bound).
        await asyncio.sleep(max(0.0, down_at + outage - time.perf_counter()))
        await asyncio.to_thread(server.resume)
        codes = [await w for w in waits]
        stopped = [w.ended_at - down_at for w in first] if any(codes) else []
        again: list[Worker] = []
        if any(codes):  # past the bound: the same command again completes it
            again = [Worker() for _ in range(2)]
            for worker in again:
                await worker.start(argv, env)
            # Read together: a worker whose stdout pipe fills while another's is read blocks,
            # holding whatever it was doing (a claim's transaction, its lease).
            codes_again = list(await asyncio.gather(*(w.wait() for w in again)))
        wall = time.perf_counter() - wall0
        tasks = [t for t in emu.tasks.values() if t.kind == "video-extend"]
    entries = await SharedJournal.read(server.dsn, batch)
    per_request = collections.Counter(str((t.body or {}).get("external_task_id")) for t in tasks)
    workers = first + again
    fresh = collections.Counter(key for w in workers for key in w.fresh())
    stderr = "".join(w.err for w in workers)
    return {
        "name": f"down {outage:g} s",
        "exit codes": " ".join(map(str, codes)),
        "exit codes, run again": " ".join(map(str, codes_again)) if again else "-",
        "shutdown to exit, s": " ".join(f"{s:.1f}" for s in stopped) if stopped else "-",
        "tasks created": len(tasks),
        "duplicates": sum(n - 1 for n in per_request.values()),
        "lost": args.tasks - sum(1 for e in entries if e.outcome == "succeed"),
        "yielded fresh, summed": sum(fresh.values()),
        "requests yielded twice": sum(1 for n in fresh.values() if n > 1),
        "tracebacks": stderr.count("Traceback"),
        "never retrieved": stderr.count("never retrieved"),
        "wall, s": wall,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=20)
    parser.add_argument("--scale", type=float, default=500.0, help="clock s per real s")
    parser.add_argument("--outages", default="5,30,90", help="real seconds down, per arm")
    parser.add_argument("--bound", type=float, default=60.0, help="--db-outage, real seconds")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries here")
    print(f"machine: {machine_note()}")
    print(f"{args.tasks} extends, {args.slots} slots, 2 CLI workers ({args.slots // 2} slots "
          f"each), T = {QUEUED + RUNNING:g} clock s +-{SPREAD:.0%}, scale {args.scale:g}, "
          f"outage bound {args.bound:g} s, journal lease 30 s\n")  # fmt: skip
    results = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(PostgresServer(bindir))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pg-outage-")))
        for outage in (float(o) for o in args.outages.split(",")):
            result = await arm(args, server, folder, outage)
            print(f"  {result['name']}: exit {result['exit codes']}, "
                  f"again {result['exit codes, run again']}", flush=True)  # fmt: skip
            results.append(result)
    keys = list(results[0])[1:]
    rows = [[k, *(r[k] for r in results)] for k in keys]
    print(table(["", *(r["name"] for r in results)], rows))


if __name__ == "__main__":
    asyncio.run(main())
