"""Helpers for driving a watch on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kling_async import FakeClock, KlingClient
from kling_async.batch import Batch, Outcome


async def settle(kling: KlingClient) -> None:
    """Wait (real time) until no poll is waiting for an answer, nor about to start.

    An answer can make another poll due at once (a callback's claim to confirm): the scheduler
    starts it on its next turn of the event loop, so "none in flight" must hold for a few turns.
    """
    quiet = 0
    for _ in range(10_000):
        if kling.scheduler.in_flight:
            quiet = 0
            await asyncio.sleep(0.001)
        elif quiet < 5:
            quiet += 1
            await asyncio.sleep(0)
        else:
            return
    raise AssertionError("polls never finished")


async def run_clock(
    clock: FakeClock,
    kling: KlingClient,
    done: Callable[[], bool],
    *,
    step: float = 1.0,
    limit: float = 100_000.0,
) -> float:
    """Advance ``clock`` in steps, letting every poll finish between steps, until ``done()``.

    Returns the clock seconds it took.
    """
    start = clock.monotonic()
    while not done():
        if clock.monotonic() - start > limit:
            raise AssertionError(f"not done after {limit} clock seconds")
        await settle(kling)
        await clock.advance(step)
        await asyncio.sleep(0)
    await settle(kling)
    return clock.monotonic() - start


def our_tasks() -> list[asyncio.Task[object]]:
    """kling_async's own asyncio tasks that are still pending."""
    return [
        t for t in asyncio.all_tasks() if t.get_name().startswith("kling_async") and not t.done()
    ]


async def run_batch(
    clock: FakeClock,
    kling: KlingClient,
    batch: Batch,
    *,
    into: list[Outcome] | None = None,
    step: float = 1.0,
) -> list[Outcome]:
    """Consume ``batch`` on ``clock`` to its end; its outcomes (also appended to ``into``, which
    keeps them when the batch raises)."""
    outcomes = [] if into is None else into

    async def consume() -> None:
        async for outcome in batch:
            outcomes.append(outcome)

    consumer = asyncio.ensure_future(consume())
    await run_clock(clock, kling, consumer.done, step=step)
    await consumer
    return outcomes


def first_poll_delay(kling: KlingClient, kind: str = "video-extend") -> float:
    """Seconds from a task's creation to its first poll, as the client's cadence places it
    now (it depends on what the client has learned of how long tasks of ``kind`` take)."""
    from kling_async.kinds import kind_named

    sketch = kling.scheduler.durations.sketch(kind, kind_named(kind).expected_seconds)
    return kling.scheduler.cadence.first_delay(sketch)
