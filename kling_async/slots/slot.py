"""What a slot is and how many may be held: :class:`Slot`, :class:`SlotLimit`.

Kling counts *parallel tasks* per account: a task holds a slot from its create until it ends
(success or failure), and a create over the limit is refused with 1303, creating nothing
(kling-api.md §7.1). The :class:`~kling_async.slots.SlotGate` hands out :class:`Slot` objects;
:class:`SlotLimit` says how many it may hand out.

The limit is given, or learned. Slow start: the window is the slots held by our running tasks
(proven) plus about log2 of that in probes, so it grows geometrically per round trip while a
1303 can refuse only those few probes. The first 1303 while our own tasks run ends slow start:
the limit is then at most what we hold (others may share the account), and it grows again by one
per ``limit`` tasks that end (additive increase), one refused POST per step at most. A probe
refused at the level of the last refusal doubles the rounds until the next one (up to 8), so an
account whose limit does not move costs a handful of refusals, not one per round.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Protocol

from ..clock import Clock
from ..errors import ConcurrencyLimitError
from ..models import Task

if TYPE_CHECKING:
    from .coordination import Lease

__all__ = ["Slot", "SlotLimit", "SlotOwner", "UnsettledSlots", "slot_weight"]


class SlotOwner(Protocol):
    """What a :class:`Slot` reports to: the :class:`~kling_async.slots.SlotGate` that gave it."""

    def _created(self, slot: Slot, task: Task) -> None: ...

    def _release(self, slot: Slot, ended: bool) -> None: ...

    def _refused(self, slot: Slot, error: ConcurrencyLimitError) -> None: ...


_MAX_PATIENCE = 8


# Kinds holding one slot per image: image generation (kling-api.md §7.1), and the other kinds
# with an ``n`` (inferred from that rule, kling-api-more-kinds.md §13: counting more is safer).
_PER_IMAGE = ("image-generation", "image-expand", "multi-image2image")


def slot_weight(kind: str, n: int | None) -> int:
    """Slots a create of ``kind`` holds: one, or one per image (kling-api.md §7.1)."""
    return max(1, n or 1) if kind in _PER_IMAGE else 1


class Slot:
    """Slots held for one create (``weight``: 1, or ``n`` for image generation).

    Given back exactly once: when its task ends, or at once when the create provably made
    nothing. An ambiguous create keeps its slot: the task may exist and run.
    """

    __slots__ = ("gate", "lease", "released", "task", "weight")

    def __init__(self, gate: SlotOwner, weight: int) -> None:
        self.gate = gate
        self.weight = weight
        self.task: Task | None = None  # set once the create succeeded
        self.released = False
        self.lease: Lease | None = None  # its place in a count shared with other processes

    def created(self, task: Task) -> None:
        """The create made ``task``: hold the slot until it ends."""
        self.gate._created(self, task)

    def release(self, *, ended: bool = False) -> None:
        """Give the slot back (idempotent). ``ended``: its task finished (grows the limit)."""
        self.gate._release(self, ended)

    def refused(self, error: ConcurrencyLimitError) -> None:
        """The create was refused with 1303: give the slot back and learn from it."""
        self.gate._refused(self, error)

    def __repr__(self) -> str:
        task = self.task.task_id if self.task else None
        return f"Slot(weight={self.weight}, task={task!r}, released={self.released})"


class SlotLimit:
    """How many slots may be held, given ``running`` (slots of our tasks not yet ended)."""

    def __init__(self, limit: int | None = None, *, ceiling: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("slots must be >= 1")
        self.ceiling = ceiling or limit or 1_000
        self.known = limit is not None
        self.limit = float(limit or 1)  # learning: the most slots proven at once so far
        self.slow_start = limit is None
        self.refusals = 0
        self._credit = 0.0
        self._regain = 0  # creates since a given limit last won a slot back
        self._patience = 1  # rounds between probes
        self._refused_at = 0  # slots we held at the last 1303
        self._probed = False  # raised by one since then, not yet proven

    def allowed(self, running: int) -> int:
        if self.slow_start:
            probes = running + max(1, running.bit_length())
            return min(self.ceiling, max(math.floor(self.limit), probes))
        return max(1, math.floor(self.limit))

    def learned(self, running: int) -> int | None:
        """The limit learned from 1303 answers (without a probe not yet proven), or ``None``
        while in slow start or when the limit was given."""
        if self.known or self.slow_start:
            return None
        return max(1, self.allowed(running) - (1 if self._probed else 0))

    def know(self, limit: int) -> None:
        """The account's limit is ``limit``: use it, shrinking only on a 1303."""
        if limit < 1:
            raise ValueError("slots must be >= 1")
        self.known, self.slow_start = True, False
        self.limit = float(limit)
        self.ceiling = limit

    def adopt(self, limit: int) -> None:
        """Another process on the account learned ``limit``: use it (a given limit stays). A
        limit lowered below ours was a probe refused elsewhere: probe more rarely, as if here."""
        if self.known or limit < 1:
            return
        if not self.slow_start and limit < math.floor(self.limit):
            self._patience = min(_MAX_PATIENCE, self._patience * 2)
        self.slow_start = False
        self.limit = min(float(self.ceiling), float(limit))
        self._probed = False
        self._credit = 0.0  # grow from the adopted limit, not from a count before it

    def resume_at(self, limit: int) -> None:
        """Start from ``limit``, learned by an earlier run, instead of slow start."""
        if self.known or not self.slow_start or limit < 1:
            return
        self.slow_start = False
        self.limit = min(float(self.ceiling), max(self.limit, float(limit)))

    def created(self, running: int) -> None:
        """A create succeeded; we now hold ``running`` slots at once, so the account has them.

        Under a given limit lowered by a 1303, each create that succeeds also wins one slot
        back: the account was stated to have them, so a refusal (another process's burst, a
        spurious 1303) costs a round trip of creates, not ``limit`` task ends per slot — and
        it recovers whether or not tasks of ours are running to end. A probe refused where the
        last one was (the account really has fewer now: a pack expired) doubles the creates
        per slot won back, up to 8, as :meth:`ended` does for a learned limit."""
        if running > self.limit:
            self.limit = min(float(self.ceiling), float(running))
        if running >= self.allowed(running):
            self._probed = False  # the probe passed
        if self.known and self.limit < self.ceiling:
            self._regain += 1
            if self._regain >= self._patience:
                self._regain = 0
                self.limit = min(float(self.ceiling), math.floor(self.limit) + 1.0)
                self._probed = True

    def ended(self, weight: float) -> None:
        """A task of ours ended: additive increase, one more slot per ``limit`` ends."""
        if self.slow_start or self.limit >= self.ceiling:
            return
        self._credit += weight
        if self._credit >= math.floor(self.limit) * self._patience:
            self._credit = 0
            self.limit = min(float(self.ceiling), self.limit + 1)
            self._probed = True

    def refused(self, running: int) -> None:
        """A 1303 while we hold ``running`` (> 0) slots: the account has at most those."""
        self.refusals += 1
        self._credit = 0
        self._regain = 0
        if not running:
            return  # held elsewhere: the gate waits; nothing learned about our share
        if self._probed and running <= self._refused_at:
            self._patience = min(_MAX_PATIENCE, self._patience * 2)
        elif running > self._refused_at:
            self._patience = 1
        self._probed = False
        self._refused_at = running
        self.limit = float(max(1, min(self.allowed(running), running)))
        self.slow_start = False


class UnsettledSlots:
    """Slots of creates whose answer was lost: the task may exist and run, so each slot is
    kept until :meth:`settle` says what became of it, or for a while (by then it has ended)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._held: dict[object, tuple[Slot, asyncio.Task[None]]] = {}

    def keep(self, key: object, slot: Slot, seconds: float) -> None:
        if slot.released:
            return
        until = self._clock.monotonic() + seconds
        self._held[key] = (slot, asyncio.ensure_future(self._release_after(key, slot, until)))

    @property
    def weight(self) -> int:
        """Slots kept for creates whose answer was lost."""
        return sum(slot.weight for slot, _ in self._held.values())

    def settle(self, key: object, task: Task) -> None:
        entry = self._held.pop(key, None)
        if entry is not None:
            slot, timer = entry
            timer.cancel()
            slot.created(task)

    async def _release_after(self, key: object, slot: Slot, until: float) -> None:
        await self._clock.sleep(until - self._clock.monotonic())
        self._held.pop(key, None)
        slot.release()

    async def aclose(self) -> None:
        timers = [timer for _, timer in self._held.values()]
        self._held.clear()
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
