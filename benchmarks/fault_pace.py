"""Under faults a batch keeps its pace (issue #25): wall time, duplicates, lost tasks.

    .venv/bin/python benchmarks/fault_pace.py [--arms official,relay,kill-official,kill-relay]

Real time, no scaling: the emulator (in this process) runs tasks of 0.1 s queued plus a
running time spread uniformly over 0.2-1.5 s, on an account of 20 slots; 18 % of creates meet
a fault — the answer dropped after the task exists, a gateway's 5xx after it exists, 503/5001
and 500/5000 before anything is created, the answer after the create's 2-s read time-out, a
1303 while slots are free — and 5 % of GETs are broken (a 502 page, a 5000, a dropped
connection). The client is the default one but for ``slots=20`` and that read time-out; its
retry waits and look-up delays (0, 2, 5 s) are the real ones.

Arms:

* ``baseline`` / ``relay-baseline``: the official and relay batches below with no fault at
  all, measured in the same run (poll spacing has a 1-s floor, so tasks of about a second
  end at the next poll: these are the floor the faulty runs are read against).
* ``official``: 1,000 extends on the official API (duplicate ids refused, the emulator's
  default reading); target <= 90 s, 0 duplicates, 0 lost, 0 ``ambiguous``.
* ``relay``: 300 extends sharing 10 parent videos on a relay; target <= 90 s, 0 duplicates.
* ``kill-official`` / ``kill-relay``: the same batch in a child process, killed with SIGKILL
  when half of its outcomes are out, then resumed here from its journal; target: finished
  <= 60 s after the resume starts, 0 duplicates.

Duplicates: requests (by their unique prompt) with more than one task on the emulator. Lost:
tasks on the emulator whose request's outcome neither names them nor says ``ambiguous``
(a relay cannot always tell: those tasks are counted apart, "behind ambiguous").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import HERE, machine_note, table

from kling_async import KlingClient, Outcome, Timeouts, VideoExtendRequest
from kling_async.testing import Durations, Fault, KlingEmulator

CREATE_FAULTS = (
    Fault.DROP_AFTER_CREATE,
    Fault.GATEWAY_502_AFTER_CREATE,
    Fault.SERVER_5001,
    Fault.SERVER_5000,
    Fault.SLOW,
    Fault.SPURIOUS_1303,
)
GET_FAULTS = (Fault.GATEWAY_HTML_502, Fault.SERVER_5000, Fault.DROP_BEFORE)
CREATE_TIMEOUTS = {"connect": 5.0, "read": 2.0, "total": 10.0}
SLOTS = 20
EXTRA: dict[str, Any] = {}


def emulator(seed: int, faults: bool = True) -> KlingEmulator:
    emu = KlingEmulator(
        slot_limit=SLOTS, durations=Durations.random(0.85, 0.65, queued=0.1, seed=seed)
    )
    if faults:
        emu.random_faults(0.18, kinds=CREATE_FAULTS, seed=seed, route="create", delay=3.0)
        emu.random_faults(0.05, kinds=GET_FAULTS, seed=seed + 1, route="get")
    return emu


def rows_for(emu: KlingEmulator, n: int, parents: int) -> list[dict[str, str]]:
    seeds = [emu.add_video() for _ in range(parents)]
    return [
        {
            "video_id": seeds[i % parents].video_id,
            "parent_task_id": seeds[i % parents].task_id,
            "prompt": f"pace-{i}",
        }
        for i in range(n)
    ]


def audit(emu: KlingEmulator, outcomes: list[Outcome]) -> dict[str, int]:
    """Duplicates and lost tasks, from what the emulator made and what the caller was told.

    A task no outcome names is *lost* unless its request's outcome is ``ambiguous`` (then the
    caller was told it may exist, with what is needed to find it: counted apart)."""
    made = collections.Counter(task.body.get("prompt") for task in emu.tasks.values())
    told = {o.task.task_id for o in outcomes if o.task is not None}
    doubted = {getattr(o.request, "prompt", None) for o in outcomes if o.outcome == "ambiguous"}
    unnamed = [
        task for t, task in emu.tasks.items() if t not in told and task.body.get("prompt")
    ]
    return {
        "duplicates": sum(c - 1 for p, c in made.items() if p and c > 1),
        "lost": sum(1 for task in unnamed if task.body.get("prompt") not in doubted),
        "behind ambiguous": sum(1 for task in unnamed if task.body.get("prompt") in doubted),
    }


async def run_batch(
    client: dict[str, Any], rows: list[dict[str, str]], journal: str | None, echo: bool = False
) -> tuple[list[Outcome], float]:
    started = time.monotonic()
    outcomes = []
    async with KlingClient(**client, create_timeouts=Timeouts(**CREATE_TIMEOUTS), **EXTRA) as kling:
        requests = [VideoExtendRequest(**row) for row in rows]
        async for outcome in kling.extend_many(requests, journal=journal, slots=SLOTS):
            outcomes.append(outcome)
            if echo:
                print(outcome.key, outcome.outcome, flush=True)
    return outcomes, time.monotonic() - started


async def straight(
    flavour: str, n: int, parents: int, seed: int, faults: bool = True
) -> dict[str, Any]:
    async with emulator(seed, faults) as emu:
        rows = rows_for(emu, n, parents)
        outcomes, took = await run_batch(emu.client_kwargs(flavour), rows, None)
        counts = collections.Counter(o.outcome for o in outcomes)
        return {
            "arm": f"{flavour} {n}" + ("" if faults else ", no faults"),
            "wall s": took,
            **audit(emu, outcomes),
            "ambiguous": counts["ambiguous"],
            "succeed": counts["succeed"],
            "1303": emu.stats.requests.get(("POST", "create", 429), 0),
        }


async def killed(flavour: str, n: int, parents: int, seed: int) -> dict[str, Any]:
    async with emulator(seed) as emu:
        rows = rows_for(emu, n, parents)
        with tempfile.TemporaryDirectory() as tmp:
            journal = str(Path(tmp) / "batch.sqlite")
            config = {"client": emu.client_kwargs(flavour), "rows": rows, "journal": journal}
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "_pace_child.py"),
                json.dumps(config),
                stdout=asyncio.subprocess.PIPE,
                cwd=str(HERE),
            )
            assert child.stdout is not None
            seen = 0
            while seen < n // 2 and await child.stdout.readline():
                seen += 1
            child.send_signal(signal.SIGKILL)
            await child.wait()
            outcomes, took = await run_batch(emu.client_kwargs(flavour), rows, journal)
        counts = collections.Counter(o.outcome for o in outcomes)
        return {
            "arm": f"kill -9 at {seen}, {flavour} {n}",
            "wall s": took,
            **audit(emu, outcomes),
            "ambiguous": counts["ambiguous"],
            "succeed": counts["succeed"],
            "1303": emu.stats.requests.get(("POST", "create", 429), 0),
        }


ARMS = {
    "baseline": lambda seed: straight("jwt", 1000, 10, seed, faults=False),
    "relay-baseline": lambda seed: straight("relay", 300, 10, seed, faults=False),
    "official": lambda seed: straight("jwt", 1000, 10, seed),
    "relay": lambda seed: straight("relay", 300, 10, seed),
    "kill-official": lambda seed: killed("jwt", 1000, 10, seed),
    "kill-relay": lambda seed: killed("relay", 300, 10, seed),
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()
    print(machine_note())
    results = []
    for name in args.arms.split(","):
        results.append(await ARMS[name](args.seed))
        print(results[-1], flush=True)
    headers = list(results[0])
    print()
    print(table(headers, [[r[h] for h in headers] for r in results]))
    base = {r["arm"].split(",")[0]: r["wall s"] for r in results if "no faults" in r["arm"]}
    for r in results:
        if "no faults" not in r["arm"] and r["arm"] in base:
            print(f"{r['arm']}: {r['wall s'] / base[r['arm']]:.2f}x its no-fault baseline")
    print("targets: wall <= 90 s (<= 60 s after a resume); duplicates 0; lost 0;")
    print("         ambiguous 0 on the official API")


if __name__ == "__main__":
    asyncio.run(main())
