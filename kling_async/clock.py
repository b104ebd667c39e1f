"""Injectable time.

Everything in kling_async that waits or reads the time (the poll scheduler, retry sleeps, token
expiry, the emulator's task life) does it through a :class:`Clock`, so that tests run in
milliseconds on a :class:`FakeClock` and benchmarks can run the client and the emulator together on
one :class:`ScaledClock` (a 320-second extend in a third of a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "ScaledClock", "SystemClock", "io_in_flight", "token_clock"]


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


def token_clock(clock: Clock) -> Clock:
    """The clock a JWT's ``exp`` and ``nbf`` are minted and judged on, given a task clock.

    Kling checks tokens on real time, and a :class:`ScaledClock` speeds up tasks, not tokens: a
    client on one mints, and an emulator on one judges, on real time, so a token minted by any
    client on real time lives its 30 minutes against a sped-up emulator. Any other clock (a
    :class:`FakeClock` that tests step through a token's life) is used as it is.
    """
    return SystemClock() if isinstance(clock, ScaledClock) else clock


# Autojump: a real-time timer of the event loop due this soon (a slow answer being served, a
# request's read time-out, a real sleep) is work about to happen; fake time waits for it.
_REAL_WORK_HORIZON = 1.0
DEFAULT_AUTOJUMP = 0.005  # real seconds of quiet before a jump: FakeClock(autojump=True)


def _loop_idle(loop: asyncio.AbstractEventLoop) -> bool:
    """No callback ready to run and no real-time timer due soon, as far as the loop shows it.

    Reads the ready queue and timer heap of asyncio's own loops (private, stable since 3.4);
    for other loops only the quiet period counts.
    """
    if getattr(loop, "_ready", None):
        return False
    soon = loop.time() + _REAL_WORK_HORIZON
    timers: list[asyncio.TimerHandle] = getattr(loop, "_scheduled", [])
    return not any(t.when() <= soon and not t.cancelled() for t in timers)


class FakeClock:
    """A clock that moves only when told to, for deterministic tests.

    ``await clock.advance(s)`` moves time forward and wakes, in deadline order, every sleeper
    whose deadline has come, letting each run before the next is woken.

    ``FakeClock(autojump=0.005)`` also moves by itself, as trio's ``MockClock`` does with an
    ``autojump_threshold``: when the event loop has had nothing to do for ``autojump`` real
    seconds, time jumps to the next sleeper's deadline and wakes it. So ``await kling.wait(task)``
    against an emulator on the same clock just returns, instantly and deterministically
    (``autojump=True`` is ``autojump=0.005``). Real
    sockets are why the threshold is not zero: "nothing to do" means, for that long, no sleep
    started or woke, no callback was ready, no request of a kling_async client was out (see
    :func:`io_in_flight`; wherever the server runs), and no real-time timer of the loop was due
    within a second (a slow answer an in-process emulator is serving). Other work in threads or
    processes is not seen; give it a longer ``autojump`` or hold the clock with
    :func:`io_in_flight`. A real time-out of your own around an awaited call counts as such a
    timer in its last second.
    """

    def __init__(
        self, *, start_time: float = 1_700_000_000.0, autojump: float | bool | None = None
    ) -> None:
        if autojump is True:
            autojump = DEFAULT_AUTOJUMP
        elif autojump is False:
            autojump = None
        if autojump is not None and not 0 < autojump < float("inf"):
            raise ValueError(
                f"autojump must be a positive number of real seconds (a quiet period; "
                f"{DEFAULT_AUTOJUMP} is typical), got {autojump!r}"
            )
        self.autojump: float | None = autojump
        self._now = 0.0
        self._epoch0 = start_time
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._jump_timer: asyncio.TimerHandle | None = None
        self._jump_loop: asyncio.AbstractEventLoop | None = None
        self._last_event = 0.0  # loop time of the last sleep started or woken: quiet since then
        self._advancing = False
        self._io = 0  # requests in flight (io_in_flight): no jump while any is

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
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), fut))
        if self.autojump is not None:
            self._last_event = loop.time()
            if self._jump_loop is not loop:  # first use, or a new loop (the old one is gone)
                self._adopt(loop)
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking due sleepers in order."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._advancing = True
        try:
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
        finally:
            self._advancing = False
        await asyncio.sleep(0)

    # -- autojump ------------------------------------------------------------------------------

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Jump on ``loop`` from now on; sleepers of an earlier loop can never be woken."""
        if self._jump_timer is not None:
            self._jump_timer.cancel()
            self._jump_timer = None
        self._sleepers = [s for s in self._sleepers if s[2].get_loop() is loop]
        heapq.heapify(self._sleepers)
        self._jump_loop = loop
        self._arm(loop, self.autojump or 0.0)

    def _arm(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self._jump_timer = loop.call_later(delay, self._maybe_jump, loop)

    def _maybe_jump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run by the loop: jump if it has been quiet for ``autojump`` seconds, else look again
        when it will have been. Disarms when nobody sleeps; the next sleep() arms it again."""
        self._jump_timer = None
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleeps
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            self._jump_loop = None
            return
        quiet_for = loop.time() - self._last_event
        threshold = self.autojump or 0.0
        if quiet_for < threshold:
            self._arm(loop, threshold - quiet_for)
            return
        if not self._advancing and not self._io and _loop_idle(loop):
            self._now = max(self._now, self._sleepers[0][0])
            # Wake everyone due now; later deadlines wait for the next quiet period, so each
            # woken coroutine's work (polls, answers) finishes before time moves again.
            while self._sleepers and self._sleepers[0][0] <= self._now:
                fut = heapq.heappop(self._sleepers)[2]
                if not fut.done():
                    fut.set_result(None)
        self._last_event = loop.time()
        self._arm(loop, threshold)

    def io_in_flight(self) -> _InFlight:
        """``async with clock.io_in_flight():`` around real I/O holds autojumps until it ends
        (the client wraps each of its requests so)."""
        return _InFlight(self)

    def __repr__(self) -> str:
        jump = "" if self.autojump is None else f", autojump={self.autojump}"
        return f"FakeClock(now={self._now}{jump})"


class _InFlight:
    __slots__ = ("_clock",)

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock

    async def __aenter__(self) -> None:
        self._clock._io += 1

    async def __aexit__(self, *exc_info: object) -> None:
        clock = self._clock
        clock._io -= 1
        if clock.autojump is not None:  # a full quiet period after the answer, before a jump
            clock._last_event = asyncio.get_running_loop().time()


_NOTHING_TO_HOLD = contextlib.nullcontext()


def io_in_flight(clock: Clock) -> contextlib.AbstractAsyncContextManager[None]:
    """``async with io_in_flight(clock):`` around a request: on a :class:`FakeClock`, no jump
    while it is out, wherever the server runs (the loop sees only its own side of a socket);
    on other clocks nothing."""
    if isinstance(clock, FakeClock):
        return clock.io_in_flight()
    return _NOTHING_TO_HOLD
