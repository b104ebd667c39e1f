"""Injectable time.

Everything in kling_async that waits or reads the time (the poll scheduler, retry sleeps, token
expiry, the emulator's task life) does it through a :class:`Clock`, so that tests run in
milliseconds on a :class:`FakeClock` and benchmarks can run the client and the emulator together on
one :class:`ScaledClock` (a 320-second extend in a third of a second).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "ScaledClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What kling_async needs from time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (deadlines, scheduling)."""

    def time(self) -> float:
        """Seconds since the Unix epoch (JWT claims, server timestamps)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class ScaledClock:
    """Real time sped up ``scale`` times: one real second is ``scale`` clock seconds.

    Share one instance between a client and an emulator so both agree on how long a task takes.
    In another process, :meth:`following` builds the same clock from the scale and the
    :attr:`origin` (``kling-async emulator`` prints both, ready to paste)::

        clock = ScaledClock.following(60, origin=1764630000.25)
        KlingClient(base_url=..., api_key=..., clock=clock)
    """

    __slots__ = ("_epoch0", "_mono0", "_origin", "scale")

    def __init__(self, scale: float, *, start_time: float | None = None) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.scale = float(scale)
        real0 = time.time()
        self._mono0 = time.monotonic()
        self._epoch0 = real0 if start_time is None else start_time
        # The Unix time at which this clock read the same as a real one: the point its line
        # (slope ``scale``) crosses real time. With the scale it describes the clock entirely.
        if start_time is None:
            self._origin: float | None = real0
        elif self.scale != 1.0:
            self._origin = (self._epoch0 - real0 * self.scale) / (1.0 - self.scale)
        else:
            self._origin = None  # a clock offset from real time, at the same pace: never met

    @classmethod
    def following(cls, scale: float, origin: float) -> ScaledClock:
        """The clock a ``ScaledClock(scale)`` started at Unix time ``origin`` shows now: how a
        client in another process gets onto an emulator's scaled clock (its tokens, callback
        timestamps and task durations then agree with the emulator's)."""
        return cls(scale, start_time=origin + (time.time() - origin) * scale)

    @property
    def origin(self) -> float | None:
        """The Unix time at which this clock read real time (when it was started, unless it
        was given a ``start_time``); ``None`` for a clock at real pace but offset from it."""
        return self._origin

    def monotonic(self) -> float:
        return (time.monotonic() - self._mono0) * self.scale

    def time(self) -> float:
        return self._epoch0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def __repr__(self) -> str:
        return f"ScaledClock(scale={self.scale})"


class FakeClock:
    """A clock that moves only when told to, for deterministic tests.

    ``await clock.advance(s)`` moves time forward and wakes, in deadline order, every sleeper
    whose deadline has come, letting each run before the next is woken.
    """

    def __init__(self, *, start_time: float = 1_700_000_000.0) -> None:
        self._now = 0.0
        self._epoch0 = start_time
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch0 + self._now

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting on this clock."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking due sleepers in order."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
                # Let the woken coroutine (and what it starts) run before time moves on.
                for _ in range(5):
                    await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"
