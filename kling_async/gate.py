"""``SlotGate``: how many paid tasks a batch may have running at once.

Kling counts *parallel tasks* per account: a task holds a slot from its create until it ends,
and a create over the limit is refused with 1303 (kling-api.md §7.1). The gate mirrors that:
a slot is taken before the POST and given back when the watcher sees the task end, not when the
POST returns. The limit is given, or learned: a 1303 shrinks it to what we hold (others may
share the account) and starts a cool-down that doubles while refusals continue; every ``limit``
tasks that end without a refusal grow it by one, up to the ceiling (additive increase,
multiplicative decrease, as TCP does). A 1302 pauses every submitter at once.
"""

from __future__ import annotations

import asyncio
import math

from .clock import Clock

__all__ = ["SlotGate"]


class SlotGate:
    """Admission control for creates. Never lets more than ``limit`` slots be held."""

    def __init__(
        self,
        clock: Clock,
        *,
        limit: int | None = None,
        ceiling: int | None = None,
        initial_guess: int = 5,
        cooldown: float = 1.0,
        max_cooldown: float = 60.0,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("slots must be >= 1")
        self.clock = clock
        self.ceiling = ceiling or limit or 1_000
        self.limit = float(limit or min(initial_guess, self.ceiling))
        self.in_use = 0
        self.max_in_use = 0
        self.refusals = 0
        self._base_cooldown = cooldown
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._paused_until = 0.0
        self._grow_credit = 0.0
        self._changed = asyncio.Event()
        self.closed = False

    @property
    def allowed(self) -> int:
        return max(1, math.floor(self.limit))

    async def acquire(self) -> bool:
        """Wait for a free slot and take it. False if the gate was closed (stop submitting)."""
        while True:
            if self.closed:
                return False
            wait = self._paused_until - self.clock.monotonic()
            if wait > 0:
                await self._sleep_or_change(wait)
                continue
            if self.in_use < self.allowed:
                self.hold()
                return True
            self._changed.clear()
            await self._changed.wait()

    def hold(self) -> None:
        """Count a slot that is already taken on the server (a task created by an earlier run
        and still running), without waiting: it must be followed whatever the limit."""
        self.in_use += 1
        self.max_in_use = max(self.max_in_use, self.in_use)

    async def _sleep_or_change(self, seconds: float) -> None:
        self._changed.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    def release(self, *, ended: bool = True) -> None:
        """Give a slot back. ``ended``: its task finished (counts towards growing the limit)."""
        self.in_use -= 1
        if ended and self.limit < self.ceiling:
            self._grow_credit += 1
            if self._grow_credit >= self.allowed:
                self._grow_credit = 0
                self.limit = min(float(self.ceiling), self.limit + 1)
        self._cooldown = max(self._base_cooldown, self._cooldown / 2)
        self._notify()

    def refused(self) -> float:
        """A create holding a slot was refused with 1303: give the slot back, shrink, cool down.

        Returns the cool-down in seconds.
        """
        self.in_use -= 1
        self.refusals += 1
        self.limit = float(max(1, min(self.allowed - 1, self.in_use) if self.in_use else 1))
        self._grow_credit = 0
        wait = self._cooldown
        self._cooldown = min(self._max_cooldown, self._cooldown * 2)
        self._pause(wait)
        return wait

    def throttled(self, seconds: float) -> None:
        """1302: every submitter waits ``seconds``."""
        self._pause(seconds)

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock.monotonic() + seconds)
        self._notify()

    def close(self) -> None:
        """No more creates (e.g. the balance ran out); waiters get False."""
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
