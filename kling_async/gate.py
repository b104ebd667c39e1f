"""``SlotGate``: the account's parallel-task slots, one gate per client, for every create.

Every create of a client (``create``, ``extend_video``, the shortcuts, ``extend_many``) takes a
:class:`~kling_async.slots.Slot` here before its POST and holds it until the task ends, as Kling
counts it (kling-api.md §7.1), so concurrent creates wait in order (FIFO) for a slot instead of
failing on 1303 while the client's own tasks run. How many may be held is the
:class:`~kling_async.slots.SlotLimit`'s business (given, or learned from 1303 answers).

The gate learns that a task ended from the client's one poll scheduler: every observation
(anyone's ``watch()``/``wait()``, trusted callbacks) reaches :meth:`SlotGate.observed`, and while
creates wait the gate follows its running tasks itself (through the same scheduler, so a task
someone already watches is polled once for both; nothing is polled when nobody waits). A 1303
while none of ours runs means others (another process, the web console) hold every slot: one
probe at a time with backoff, and one log line per episode.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .clock import Clock
from .errors import AmbiguousSubmitError, ConcurrencyLimitError, KlingError, SlotTimeoutError
from .kinds import kind_named
from .models import Task
from .scheduler import PollScheduler
from .slots import Slot, SlotLimit

__all__ = ["SlotGate"]

log = logging.getLogger("kling_async")

Backoff = Callable[[int, BaseException], float]


class SlotGate:
    """Admission control for every create of one client. FIFO; never more than ``limit``."""

    def __init__(
        self,
        clock: Clock,
        *,
        limit: int | None = None,
        ceiling: int | None = None,
        backoff: Backoff | None = None,
        scheduler: PollScheduler | None = None,
        timeout: float | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError("slot_timeout must be > 0 seconds or None")
        self.clock = clock
        self.timeout = timeout
        self.policy = SlotLimit(limit, ceiling=ceiling)
        self.in_use = 0
        self.max_in_use = 0
        self._backoff = backoff or (lambda attempt, _error: min(60.0, 2.0 ** (attempt - 1)))
        self._scheduler = scheduler
        self._waiters: collections.deque[tuple[asyncio.Future[None], Slot]] = collections.deque()
        self._running: dict[str, Slot] = {}  # task id -> slot of a task not yet seen ending
        self._running_weight = 0
        self._following = False
        self._outside = 0  # 1303s in a row while none of ours ran (slots held elsewhere)
        self._paused_until = 0.0
        self._timer: asyncio.Task[None] | None = None
        self._unsettled: dict[object, tuple[Slot, asyncio.Task[None]]] = {}
        if scheduler is not None:
            scheduler.add_observer(self.observed)

    # -- public ------------------------------------------------------------------------------

    @property
    def allowed(self) -> int:
        """Slots that may be held now."""
        return self.policy.allowed(self._running_weight)

    @property
    def known(self) -> bool:
        """The limit was given (``slots=``), not learned."""
        return self.policy.known

    @property
    def refusals(self) -> int:
        """1303 answers seen so far."""
        return self.policy.refusals

    @property
    def waiting(self) -> int:
        """How many creates are waiting for a slot."""
        return sum(1 for fut, _ in self._waiters if not fut.done())

    @property
    def running(self) -> int:
        """Slots held by tasks this client created and has not yet seen end."""
        return self._running_weight

    @property
    def learned(self) -> int | None:
        """The limit learned from 1303 answers, or ``None`` (given, or not learned yet)."""
        return self.policy.learned(self._running_weight)

    def know(self, limit: int) -> None:
        """The account's limit is ``limit`` (a batch was told ``slots=``): use it from now on,
        shrinking again only on a 1303."""
        self.policy.know(limit)
        self._dispatch()

    def resume_at(self, limit: int) -> None:
        """Start from ``limit``, learned by an earlier run (a journal), not from slow start."""
        self.policy.resume_at(limit)
        self._dispatch()

    async def acquire(
        self, weight: int = 1, *, timeout: float | None = None, front: bool = False
    ) -> Slot:
        """Wait (in order) for ``weight`` free slots and take them.

        ``timeout`` (default: the gate's) bounds the wait with :class:`SlotTimeoutError`;
        ``front`` puts the caller first in line (a create that was refused goes back to where
        it stood). Cancelled while waiting: nothing is held.
        """
        slot = Slot(self, weight)
        if not self._waiters and self._fits(weight):
            self._take(slot)
            return slot
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (fut, slot)
        if front:
            self._waiters.appendleft(entry)
        else:
            self._waiters.append(entry)
        self._follow()
        self._dispatch()
        timeout = self.timeout if timeout is None else timeout
        expiry = None
        if timeout is not None:
            expiry = asyncio.ensure_future(self._expire(fut, timeout, self.clock.monotonic()))
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                slot.release()  # granted just as the caller was cancelled
            else:
                self._forget(entry)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        return slot

    def hold(self, task: Task) -> Slot:
        """Count a task that already holds a slot on the server (created by an earlier run
        and still running) without waiting: it is followed whatever the limit."""
        slot = Slot(self, 1)
        self._take(slot)
        slot.created(task)
        return slot

    def throttled(self, seconds: float) -> None:
        """1302: no slot is handed out for ``seconds``."""
        self._pause(seconds)

    def observed(self, task: Task) -> None:
        """Someone saw ``task`` (a poll, a callback): if it is ours and ended, free its slot."""
        if task.is_terminal:
            slot = self._running.get(task.task_id)
            if slot is not None:
                slot.release(ended=True)

    async def create(
        self,
        send: Callable[[], Awaitable[Task]],
        *,
        weight: int = 1,
        slot: Slot | None = None,
        timeout: float | None = None,
        requeue: bool = True,
        hold_unsettled: float = 600.0,
    ) -> Task:
        """Run one create (``send``: its POST and lost-answer lookup) under a slot.

        The slot is taken here (waiting at most ``timeout``, refusals included) unless the
        caller holds one. A 1303 gives it back and, with ``requeue``, waits again at the head
        of the line; otherwise the error is raised. A create that provably made nothing gives
        its slot back; an ambiguous or cut-off one keeps it (see :meth:`unsettled`).
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"slot_timeout must be > 0 seconds or None, got {timeout!r}")
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else self.clock.monotonic() + timeout
        if slot is None:
            slot = await self.acquire(weight, timeout=timeout)
        while True:
            try:
                task = await send()
            except ConcurrencyLimitError as refused:
                slot.refused(refused)
                if not requeue:
                    raise
                left = None if deadline is None else deadline - self.clock.monotonic()
                if left is not None and left <= 0:
                    raise SlotTimeoutError(
                        timeout or 0.0, in_use=self.in_use, limit=self.allowed
                    ) from refused
                slot = await self.acquire(slot.weight, timeout=left, front=True)
                continue
            except AmbiguousSubmitError as lost:
                self.unsettled((lost.external_task_id, lost.sent_at), slot, hold_unsettled)
                raise
            except asyncio.CancelledError:
                self.unsettled(object(), slot, hold_unsettled)  # the POST may be on the wire
                raise
            except BaseException:
                slot.release()  # refused, or never sent: nothing was created
                raise
            slot.created(task)
            return task

    def unsettled(self, key: object, slot: Slot, seconds: float) -> None:
        """A create whose answer was lost may have made a task that runs: keep its slot until
        :meth:`settle` says what became of it, or for ``seconds`` (by then it has ended)."""
        if slot.released:
            return
        until = self.clock.monotonic() + seconds
        timer = asyncio.ensure_future(self._release_after(key, slot, until))
        self._unsettled[key] = (slot, timer)

    def settle(self, key: object, task: Task) -> None:
        """The lost create ``key`` was found to have made ``task``: held until it ends."""
        entry = self._unsettled.pop(key, None)
        if entry is not None:
            slot, timer = entry
            timer.cancel()
            slot.created(task)

    async def _release_after(self, key: object, slot: Slot, until: float) -> None:
        await self.clock.sleep(until - self.clock.monotonic())
        self._unsettled.pop(key, None)
        slot.release()

    async def aclose(self) -> None:
        """Stop the gate's timers (the client is closing)."""
        timers = [timer for _, timer in self._unsettled.values()]
        if self._timer is not None:
            timers.append(self._timer)
        self._unsettled.clear()
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)

    # -- Listener (the scheduler tells the gate about the tasks it follows) -------------------

    def observe(self, task: Task) -> None:
        self.observed(task)

    def expire(self, task_id: str, last: Task | None) -> None:  # no deadlines are set
        pass

    def fail(self, task_id: str, error: KlingError) -> None:
        # The task cannot be polled (gone?): stop counting it rather than wait on it forever;
        # if it still runs, the next 1303 shrinks the limit to what we hold.
        slot = self._running.get(task_id)
        if slot is not None:
            slot.release()

    def fatal(self, error: KlingError) -> None:
        # Nothing of this account can be polled (credentials, account): every create would
        # fail the same way, so waiting creates fail now rather than wait for ends never seen.
        while self._waiters:
            fut, _ = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
        self._unfollow()

    # -- slots -------------------------------------------------------------------------------

    def _fits(self, weight: int) -> bool:
        if self.clock.monotonic() < self._paused_until:
            return False
        if self._outside:
            return self.in_use == 0  # slots held elsewhere: one probe at a time
        return self.in_use == 0 or self.in_use + weight <= self.allowed

    def _take(self, slot: Slot) -> None:
        self.in_use += slot.weight
        self.max_in_use = max(self.max_in_use, self.in_use)

    def _created(self, slot: Slot, task: Task) -> None:
        if slot.released:
            return
        slot.task = task
        if task.is_terminal:
            slot.release(ended=True)
            return
        self._running[task.task_id] = slot
        self._running_weight += slot.weight
        if self._outside:
            log.info("slots: a create got a slot again after %d refusals", self._outside)
            self._outside = 0
        self.policy.created(self._running_weight)
        if self._following:
            self._track(slot)
        self._dispatch()

    def _release(self, slot: Slot, ended: bool) -> None:
        if slot.released:
            return
        slot.released = True
        self.in_use -= slot.weight
        if slot.task is not None and self._running.get(slot.task.task_id) is slot:
            del self._running[slot.task.task_id]
            self._running_weight -= slot.weight
            if self._following and self._scheduler is not None:
                self._scheduler.untrack(slot.task.task_id, self)
        if ended:
            self.policy.ended(slot.weight)
        self._dispatch()

    def _refused(self, slot: Slot, error: ConcurrencyLimitError) -> None:
        if slot.released:
            return
        slot.released = True
        self.in_use -= slot.weight
        # With our own tasks running, the refused create waits for one of them to end.
        self.policy.refused(self._running_weight)
        if not self._running_weight:
            self._outside += 1
            wait = self._backoff(self._outside, error)
            if self._outside == 1:
                log.warning(
                    "slots: refused with 1303 while none of this client's tasks run: another "
                    "process or the web console holds the account's slots; waiting (backoff)"
                )
            self._pause(wait)
        self._dispatch()

    # -- waiters -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand free slots to waiters, first come first served."""
        while self._waiters:
            fut, slot = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if not self._fits(slot.weight):
                break
            self._waiters.popleft()
            self._take(slot)
            fut.set_result(None)
        if not self.waiting:
            self._unfollow()

    def _forget(self, entry: tuple[asyncio.Future[None], Slot]) -> None:
        with contextlib.suppress(ValueError):  # already handed a slot or failed
            self._waiters.remove(entry)
        self._dispatch()

    async def _expire(self, fut: asyncio.Future[None], timeout: float, since: float) -> None:
        await self.clock.sleep(since + timeout - self.clock.monotonic())
        if not fut.done():
            fut.set_exception(SlotTimeoutError(timeout, in_use=self.in_use, limit=self.allowed))

    def _pause(self, seconds: float) -> None:
        until = self.clock.monotonic() + seconds
        if until <= self._paused_until:
            return
        self._paused_until = until
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.ensure_future(self._resume(until))

    async def _resume(self, until: float) -> None:
        await self.clock.sleep(until - self.clock.monotonic())
        self._paused_until = min(self._paused_until, self.clock.monotonic())
        self._dispatch()

    # -- following our running tasks while creates wait ---------------------------------------

    def _follow(self) -> None:
        if self._following or self._scheduler is None:
            return
        self._following = True
        for slot in list(self._running.values()):
            self._track(slot)

    def _track(self, slot: Slot) -> None:
        assert self._scheduler is not None and slot.task is not None
        task = slot.task
        self._scheduler.track(task.task_id, kind_named(task.kind), self, last=task)

    def _unfollow(self) -> None:
        if not self._following or self._scheduler is None:
            return
        self._following = False
        for task_id in list(self._running):
            self._scheduler.untrack(task_id, self)
