"""Several worker processes drain one batch of a PostgreSQL journal against one emulator: each
request is created once across all of them, and a worker killed with ``kill -9`` loses nothing
(its leases run out, the others take its requests over, looking lost answers up first)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from kling_async import ScaledClock
from kling_async.journal import SharedJournal
from kling_async.testing import Durations, Fault, KlingEmulator

CHILD = Path(__file__).with_name("worker_child.py")
ROOT = Path(__file__).resolve().parents[2]
SCALE = 60.0


async def start_worker(config: dict[str, Any]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


async def finish(worker: asyncio.subprocess.Process, timeout: float = 60) -> list[dict[str, Any]]:
    assert worker.stdout is not None
    out = await asyncio.wait_for(worker.stdout.read(), timeout)
    await worker.wait()
    return [json.loads(line) for line in out.decode().splitlines()]


def setup(
    emu: KlingEmulator, clock: ScaledClock, pg_dsn: str, n: int, **extra: Any
) -> dict[str, Any]:
    seed = emu.add_video()
    rows = [{"video_id": seed.video_id, "prompt": f"p{i}", "external_task_id": f"req-{i}"}
            for i in range(n)]  # fmt: skip
    return {
        "client": emu.client_kwargs("jwt"),
        "dsn": pg_dsn,
        "batch": "workers",
        "lease": 0.6,
        "requests": rows,
        "slots": None,
        "scale": SCALE,
        "origin": clock.origin,
        **extra,
    }


def tasks_per_request(emu: KlingEmulator) -> collections.Counter[str]:
    return collections.Counter(
        str((rec.body or {}).get("external_task_id")) for rec in emu.tasks.values()
        if rec.kind == "video-extend"
    )  # fmt: skip


async def test_three_workers_drain_one_batch_creating_each_request_once(pg_dsn: str) -> None:
    clock = ScaledClock(SCALE)
    n = 36
    durations = Durations(queued=1, running=9)
    async with KlingEmulator(clock=clock, durations=durations, slot_limit=8) as emu:
        config = setup(emu, clock, pg_dsn, n, slots=8)
        workers = [await start_worker(config) for _ in range(3)]
        lines = [line for w in workers for line in await finish(w)]
        assert all(w.returncode == 0 for w in workers)
        per_request = tasks_per_request(emu)
    assert len(per_request) == n and set(per_request.values()) == {1}  # created once each
    assert emu.stats.created == n
    # Every request was handled by one worker; each yielded the outcomes of its own.
    keys = collections.Counter(line["key"] for line in lines if not line["from_journal"])
    assert len(keys) == n and set(keys.values()) == {1}
    assert {line["outcome"] for line in lines} == {"succeed"}
    entries = await SharedJournal.read(pg_dsn, "workers")
    assert [e.outcome for e in entries] == ["succeed"] * n
    assert len({e.task_id for e in entries}) == n


@pytest.mark.parametrize("standby", [False, True])
async def test_a_worker_killed_mid_run_loses_nothing(pg_dsn: str, standby: bool) -> None:
    """kill -9 one of three workers while its creates are in flight (answers are slow, so some
    of its tasks exist with no task id journalled): the others take its requests over, find
    those tasks by look-up and watch its running ones; nothing is created twice. ``standby``:
    the others have no input of their own, so all they do is take over (claim_orphans)."""
    clock = ScaledClock(SCALE)
    n = 36
    durations = Durations(queued=1, running=9)
    async with KlingEmulator(clock=clock, durations=durations, slot_limit=8) as emu:
        emu.fault(Fault.SLOW, route="create", times=None, delay=0.05)
        config = setup(emu, clock, pg_dsn, n, slots=8)
        victim = await start_worker(config)
        for _ in range(2000):  # real time: until the victim alone has created a few tasks
            if emu.stats.created >= 4 or victim.returncode is not None:
                break
            await asyncio.sleep(0.005)
        others = [
            await start_worker({**config, "requests": []} if standby else config) for _ in range(2)
        ]
        await asyncio.sleep(0.3)
        assert victim.returncode is None, "the victim finished before it could be killed"
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        assert victim.stdout is not None
        await victim.stdout.read()
        lines = [line for w in others for line in await finish(w)]
        assert all(w.returncode == 0 for w in others)
        per_request = tasks_per_request(emu)
    assert victim.returncode == -signal.SIGKILL
    assert len(per_request) == n and set(per_request.values()) == {1}, per_request
    entries = await SharedJournal.read(pg_dsn, "workers")
    assert collections.Counter(e.outcome for e in entries) == {"succeed": n}
    assert {e.task_id for e in entries} == {
        task_id for task_id, rec in emu.tasks.items() if rec.kind == "video-extend"
    }
    taken_over = {line["key"] for line in lines if not line["from_journal"]}
    # The others handled what the victim left (under load it may have finished nothing).
    assert taken_over
