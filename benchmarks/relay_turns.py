"""What per-parent turns cost on the relay flavour (issue #12).

    .venv/bin/python benchmarks/relay_turns.py [--creates 200] [--latency 0.05] [--slots N]

On a relay, creates of one parent video take turns (``Creator.turn``): the next is sent only
once the previous one's answer is in (in a journalled batch: once its task id is committed).
The official flavour needs no turns (its look-ups go by ``external_task_id``). Every create
here is answered ``--latency`` real seconds after its task is made (the emulator's SLOW fault
on every create, standing for the network and the server's own time), and
``extend_many(journal=..., slots=--slots)`` (default: as many as creates, so slots never
bind: a slot is held until the task ends) sends ``--creates`` extends spread over P parent
videos. The figure is the time until the last task is created, relay vs official, per P; the
tasks then run on (nothing here waits for them). Expect the relay to be bounded by
P / latency creates per second, the official API by slots / latency.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from kling_async import KlingClient, ScaledClock, VideoExtendRequest
from kling_async.testing import Durations, Fault, KlingEmulator


async def run(flavour: str, creates: int, parents: int, latency: float, slots: int) -> float:
    clock = ScaledClock(1.0)
    durations = Durations(queued=5, running=3600)  # tasks outlive the measurement
    async with KlingEmulator(clock=clock, durations=durations) as emu:
        seeds = [emu.add_video() for _ in range(parents)]
        emu.fault(Fault.SLOW, route="create", times=None, delay=latency)
        requests = [
            VideoExtendRequest(
                video_id=seeds[i * parents // creates].video_id,
                parent_task_id=seeds[i * parents // creates].task_id,
                prompt=f"b{i}",
            )
            for i in range(creates)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            async with KlingClient(**emu.client_kwargs(flavour), clock=clock) as kling:  # type: ignore[arg-type]
                batch = kling.extend_many(requests, journal=Path(tmp) / "b.sqlite", slots=slots)
                stream = batch.__aiter__()
                consumer = asyncio.ensure_future(stream.__anext__())
                start = time.perf_counter()
                while len(batch.running) < creates:
                    if time.perf_counter() - start > 120:
                        raise RuntimeError(f"only {len(batch.running)} tasks after 120 s")
                    await asyncio.sleep(0.002)
                elapsed = time.perf_counter() - start
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
                await stream.aclose()  # type: ignore[attr-defined]
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--slots", type=int, default=None)
    args = parser.parse_args()
    args.slots = args.slots or args.creates
    print(f"{args.creates} creates, {args.latency * 1000:g} ms per answer, {args.slots} slots")
    print(f"{'parents':>8} {'official s':>11} {'relay s':>9} {'relay/official':>15}")
    for parents in (1, 5, 10, 50):
        official = await run("jwt", args.creates, parents, args.latency, args.slots)
        relay = await run("relay", args.creates, parents, args.latency, args.slots)
        print(f"{parents:>8} {official:>11.2f} {relay:>9.2f} {relay / official:>15.1f}")


if __name__ == "__main__":
    asyncio.run(main())
