"""``SlotGate``: the account's parallel-task slots, one gate per client, for every create.

Every create of a client (``create``, ``extend_video``, the shortcuts, ``extend_many``) takes a
:class:`~kling_async.slots.Slot` here before its POST and holds it until the task ends, as Kling
counts it (kling-api.md §7.1): concurrent creates wait in order (FIFO) instead of failing on 1303
while the client's own tasks run. How many: :class:`~kling_async.slots.SlotLimit` (given, or
learned from 1303 answers).

The gate learns that a task ended from the client's one poll scheduler (anyone's
``watch()``/``wait()``, trusted callbacks reach :meth:`SlotGate.observed`); while creates wait it
follows its running tasks itself, through that scheduler (polled once for both when watched
already; nothing polled when nobody waits). A 1303 while none of ours runs means others hold
every slot: one probe at a time with backoff, one log line per episode.

With a shared :class:`~kling_async.slots.Coordinator` (several processes on one account),
a slot is also a lease in the shared count (``take``), the limit is the account's, and running
tasks are followed all the time: a waiter in another process cannot ask this one to look.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..clock import Clock
from ..errors import AmbiguousSubmitError, ConcurrencyLimitError, KlingError, SlotTimeoutError
from ..models import Task
from ..polling.scheduler import PollScheduler
from .coordination import Coordinator, LocalCoordinator
from .slot import Slot, SlotLimit, UnsettledSlots
from .tasks import SlotTasks

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
        coordinator: Coordinator | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError("slot_timeout must be > 0 seconds or None")
        self.clock = clock
        self.timeout = timeout
        self.policy = SlotLimit(limit, ceiling=ceiling)
        self.in_use = 0
        self.max_in_use = 0
        self._backoff = backoff or (lambda attempt, _error: min(60.0, 2.0 ** (attempt - 1)))
        self._waiters: collections.deque[tuple[asyncio.Future[None], Slot]] = collections.deque()
        self._tasks = SlotTasks(scheduler, self._fatal)
        self._outside = 0  # 1303s in a row while none of ours ran (slots held elsewhere)
        self._paused_until = 0.0
        self._timer: asyncio.Task[None] | None = None
        self._unsettled = UnsettledSlots(clock)
        self.coordinator: Coordinator = coordinator or LocalCoordinator()
        self._shared_limit: int | None = None  # the learned limit last told to the others
        if scheduler is not None:
            scheduler.add_observer(self.observed)
            self._tasks.following = self.coordinator.shared

    # -- public ------------------------------------------------------------------------------

    @property
    def allowed(self) -> int:
        """Slots that may be held now."""
        return self.policy.allowed(self._account_running())

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
        return self._tasks.weight

    @property
    def learned(self) -> int | None:
        """The limit learned from 1303 answers, or ``None`` (given, or not learned yet)."""
        return self.policy.learned(self._account_running())

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
        if not self.coordinator.shared:
            return await self._acquire(weight, timeout, front)
        timeout = self.timeout if timeout is None else timeout
        since = self.clock.monotonic()
        slot = await self._acquire(weight, timeout, front)
        left = None if timeout is None else max(0.0, since + timeout - self.clock.monotonic())
        try:
            slot.lease = await self.coordinator.take(weight, self._shared_allowed, left)
        except BaseException:
            slot.release()
            raise
        if slot.lease is None:
            slot.release()
            raise SlotTimeoutError(timeout or 0.0, in_use=self.in_use, limit=self.allowed)
        return slot

    async def _acquire(self, weight: int, timeout: float | None, front: bool) -> Slot:
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
        self._tasks.follow()
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
        """Count a task of an earlier run still holding its slot, whatever the limit."""
        slot = Slot(self, 1)
        self._take(slot)
        if self.coordinator.shared:
            slot.lease = self.coordinator.hold(1)
        slot.created(task)
        return slot

    def throttled(self, seconds: float) -> None:
        """1302: no slot is handed out for ``seconds``."""
        self._pause(seconds)

    def observed(self, task: Task) -> None:
        """Someone saw ``task`` (a poll, a callback): if it is ours and ended, free its slot."""
        self._tasks.observed(task)
        if task.is_terminal:
            self.coordinator.ended(task.task_id)

    async def create(
        self,
        send: Callable[[], Awaitable[Task]],
        *,
        weight: int = 1,
        slot: Slot | None = None,
        timeout: float | None = None,
        requeue: bool = True,
        hold_unsettled: Callable[[], float] = lambda: 600.0,
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
                self.unsettled((lost.external_task_id, lost.sent_at), slot, hold_unsettled())
                raise
            except asyncio.CancelledError:
                self.unsettled(object(), slot, hold_unsettled())  # the POST may be on the wire
                raise
            except BaseException:
                slot.release()  # refused, or never sent: nothing was created
                raise
            slot.created(task)
            return task

    def unsettled(self, key: object, slot: Slot, seconds: float) -> None:
        """A create whose answer was lost may have made a task that runs: keep its slot until
        :meth:`settle` says what became of it, or for ``seconds`` (by then it has ended)."""
        self._unsettled.keep(key, slot, seconds)

    def settle(self, key: object, task: Task) -> None:
        """The lost create ``key`` was found to have made ``task``: held until it ends."""
        self._unsettled.settle(key, task)

    async def aclose(self) -> None:
        """Stop the gate's timers (the client is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        await self._unsettled.aclose()

    def _fatal(self, error: KlingError) -> None:
        # Nothing of the account can be polled (credentials): fail waiting creates, not wait.
        while self._waiters:
            fut, _ = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
        self._tasks.unfollow()

    # -- sharing the account with other processes (a coordinator) ----------------------------

    async def start(self) -> None:
        """Connect the coordinator; start from the limit other processes learned, if any."""
        stored = await self.coordinator.start()
        if stored is not None:
            self.resume_at(stored)

    def _account_running(self) -> int:
        return self.coordinator.running(self._tasks.weight)

    def _shared_allowed(self, stored: int | None, running: int) -> int:
        if stored is not None and stored != self._shared_limit:
            self.policy.adopt(stored)  # another process learned it
            self._shared_limit = stored
        # A count is a snapshot: that many ran at once (proven, as by a create of our own).
        self.policy.created(running)
        self._share_learned()
        return self.policy.allowed(running)

    def _share_learned(self) -> None:
        learned = self.learned
        if self.coordinator.shared and learned is not None and learned != self._shared_limit:
            self._shared_limit = learned
            self.coordinator.learned(learned)

    # -- slots -------------------------------------------------------------------------------

    def _fits(self, weight: int) -> bool:
        if self.clock.monotonic() < self._paused_until:
            return False
        if self._outside:
            # Slots held elsewhere: one probe at a time. Slots kept for lost answers are no
            # probe: waiting for their timers would stall every create on a guess.
            return self.in_use - self._unsettled.weight == 0
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
        if slot.lease is not None:
            self.coordinator.created(slot.lease, task.task_id)
        self._tasks.add(slot, task)
        if self._outside:
            log.info("slots: a create got a slot again after %d refusals", self._outside)
            self._outside = 0
        self.policy.created(self._account_running())
        self._share_learned()
        self._dispatch()

    def _give_back(self, slot: Slot) -> bool:
        if slot.released:
            return False
        slot.released = True
        self.in_use -= slot.weight
        if slot.lease is not None:
            self.coordinator.release(slot.lease)
        return True

    def _release(self, slot: Slot, ended: bool) -> None:
        if not self._give_back(slot):
            return
        self._tasks.remove(slot)
        if ended:
            # Shared, each process sees its own share of the account's ends: together they add
            # one slot per `limit` ends, as one process would, not one each.
            self.policy.ended(slot.weight / self.coordinator.sharers)
            self._share_learned()
        self._dispatch()

    def _refused(self, slot: Slot, error: ConcurrencyLimitError) -> None:
        if not self._give_back(slot):
            return
        # With our own tasks running, the refused create waits for one of them to end.
        running = self._account_running()
        self.policy.refused(running)
        self._share_learned()
        if not running:
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
        if not self.waiting and not self.coordinator.shared:
            self._tasks.unfollow()

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
