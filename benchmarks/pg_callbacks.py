"""Callback fan-out through PostgreSQL (issue #19): a callback that reaches replica B wakes
``wait()`` on replica A.

    .venv/bin/python benchmarks/pg_callbacks.py [--tasks 200] [--runs 3] [--dsn postgresql://...]

Three processes and a database: the emulator (tasks of 320 clock s +-25 %, clock x40, signed
callbacks), replica B (a client with ``coordinator=DSN`` and a ``CallbackReceiver`` with the
secret, served over aiohttp: every callback goes there), and replica A (this process, a client
with the same coordinator, which creates ``--tasks`` extends with B's callback URL and awaits
``wait()`` on each). A's clock is frozen, so A never polls: each wake came from B's callback,
through the database (a row and a NOTIFY, A's LISTEN connection, one SELECT).

The figure is the wake latency of each task: the wall-clock time from B's receiver accepting
its final callback (``on_event``) to A's ``wait()`` returning it, both on this machine's clock;
p50 / p99 / max per run. Without ``--dsn``, a throw-away PostgreSQL server is started from this
machine's binaries (as ``tests/pg_server.py`` does for the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import EmulatorProcess, SharedClock, machine_note, median, percentile, table
from aiohttp import web

from kling_async import FakeClock, KlingClient, Task, TaskStatus
from kling_async.webhooks import CallbackEvent, CallbackReceiver, aiohttp_handler

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + "a2xpbmctYXN5bmMtYmVuY2htYXJrLWtleS0zMmI="  # a throw-away test key
SCALE = 40.0


# -- replica B: a receiver (another process) ---------------------------------------------------


async def replica_b(config: dict[str, Any]) -> None:
    clock = SharedClock(SCALE, config["mono0"], config["epoch0"])
    received: dict[str, float] = {}

    def on_event(event: CallbackEvent) -> None:
        if event.task.is_terminal:
            received[event.task.task_id] = time.time()

    async with KlingClient(**config["client"], clock=clock, coordinator=config["dsn"]) as kling:
        receiver = CallbackReceiver(secret=SECRET, client=kling, on_event=on_event)
        app = web.Application()
        app.router.add_post("/kling-callback", aiohttp_handler(receiver))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"http://{host}:{port}/kling-callback", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(json.dumps(received), flush=True)
        await runner.cleanup()


# -- replica A: the waiter (this process) ------------------------------------------------------


async def one_run(dsn: str, tasks: int) -> dict[str, Any]:
    clock = SharedClock(SCALE)
    emulator = EmulatorProcess(clock, queued=5.0, running=320.0, spread=0.25, webhook_secret=SECRET)
    async with emulator:
        client = {"base_url": emulator.info["base_url"], "api_key": emulator.info["api_key"]}
        config = {"client": client, "dsn": dsn, "mono0": clock.mono0, "epoch0": clock.epoch0}
        b = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--replica-b", json.dumps(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert b.stdin is not None and b.stdout is not None
        url = (await b.stdout.readline()).decode().strip()
        woke: dict[str, float] = {}
        async with KlingClient(**client, clock=FakeClock(), coordinator=dsn) as a:

            async def follow(task: Task) -> None:
                done = await a.wait(task)
                assert done.task_status is TaskStatus.SUCCEED
                woke[task.task_id] = time.time()

            created = [
                await a.extend_video(emulator.info["video_id"], callback_url=url)
                for _ in range(tasks)
            ]
            await asyncio.wait_for(asyncio.gather(*map(follow, created)), 600 / SCALE * 2 + 60)
            polls = a.scheduler.polls_sent
        b.stdin.close()
        received: dict[str, float] = json.loads(await b.stdout.readline())
        await b.wait()
    lags = [(woke[t] - received[t]) * 1000.0 for t in woke if t in received]
    return {"tasks": len(woke), "measured": len(lags), "lags": lags, "polls": polls}


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    sys.path.insert(0, str(ROOT))
    from tests.pg_server import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL server binaries here: pass --dsn")
    with PostgresServer(bindir) as server:
        yield server.dsn


async def main(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        dsn = args.dsn or stack.enter_context(throwaway_server())
        print(f"# {machine_note()}; {args.tasks} tasks per run, clock x{SCALE:g}")
        rows = []
        every: list[float] = []
        for run in range(1, args.runs + 1):
            result = await one_run(dsn, args.tasks)
            lags = result["lags"]
            every += lags
            rows.append([
                run, result["tasks"], result["measured"], result["polls"],
                median(lags), percentile(lags, 99), max(lags),
            ])  # fmt: skip
        rows.append(["all", sum(r[1] for r in rows), len(every), "-", median(every),
                     percentile(every, 99), max(every)])  # fmt: skip
        headers = ["run", "woke", "measured", "A's polls", "p50 ms", "p99 ms", "max ms"]
        print(table(headers, rows))
        print("target: p99 <= 50 ms")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--replica-b":
        asyncio.run(replica_b(json.loads(sys.argv[2])))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn", default="", help="a database to use (default: a throw-away one)")
    asyncio.run(main(parser.parse_args()))
