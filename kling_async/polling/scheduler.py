"""The poll scheduler: one per client, following every task anyone watches.

The :class:`PollScheduler` keeps a heap of next-poll times for every task anyone is following,
and runs one loop that starts the polls that are due, never more than ``max_in_flight`` at once
and never faster than the ``max_polls_per_second`` budget that all tasks share. Ten thousand
tasks are ten thousand heap entries, not ten thousand sleeping coroutines. A task followed by
several subscribers is polled once for all of them. Callbacks feed the same scheduler
(:meth:`PollScheduler.hint`): a verified one is taken as an observation, an unverified one
triggers one confirming poll; either way tasks that callbacks cover are then polled only on a
long safety interval.

Subscribers (:class:`~kling_async.polling.TaskWatch`) implement :class:`Listener`.

One module, though past 400 lines: the loop, the pacing and the bookkeeping of listeners
share one heap and its invariants (a task is in the heap once, polled by one coroutine at a
time); split, each half would need the other's invariants to be read. What it keeps per task
(:class:`~.tracked.Tracked`) and tells its listeners is in :mod:`.tracked`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable

import attrs

from ..clock import Clock
from ..errors import (
    AuthenticationError,
    KlingError,
)
from ..kinds import Kind
from ..models import Task, TaskStatus
from ..retry import retryable_read
from .cadence import Cadence
from .durations import DurationModel, DurationSketch
from .tracked import STATUS_RANK, Fetch, Listener, Tracked, is_fatal

__all__ = ["Fetch", "Listener", "PollScheduler"]

log = logging.getLogger("kling_async")

class PollScheduler:
    """One loop that polls every followed task when it is due, within a shared budget."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        clock: Clock,
        cadence: Cadence,
        retry_delay: Callable[[int, BaseException], float],
        max_polls_per_second: float | None = 50.0,
        max_in_flight: int = 20,
        durations: DurationModel | None = None,
    ) -> None:
        if max_polls_per_second is not None and max_polls_per_second <= 0:
            raise ValueError("max_polls_per_second must be > 0 or None")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._fetch = fetch
        self.clock = clock
        self.cadence = cadence
        #: What the scheduler has learned of how long tasks take (see :mod:`.durations`).
        self.durations = durations if durations is not None else DurationModel()
        self._retry_delay = retry_delay
        self.rate = max_polls_per_second
        self.max_in_flight = max_in_flight
        self._tracked: dict[str, Tracked] = {}
        self._polls: list[tuple[float, int, str, int]] = []  # (due, seq, task_id, generation)
        self._deadlines: list[tuple[float, int, str, Listener]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._tokens = 1.0
        self._refilled = clock.monotonic()
        self._loop: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self.polls_sent = 0
        self._observers: list[Callable[[Task], None]] = []
        #: Told of every callback hint given here (a coordinator passes it to other processes).
        self.relay: Callable[[Task, bool], object] | None = None

    # -- subscriptions ----------------------------------------------------------------------

    @property
    def tracked(self) -> int:
        """How many tasks are being followed."""
        return len(self._tracked)

    @property
    def in_flight(self) -> int:
        """How many polls are waiting for an answer."""
        return self._in_flight

    def track(
        self,
        task_id: str,
        kind: Kind,
        listener: Listener,
        *,
        last: Task | None = None,
        deadline: float | None = None,
    ) -> None:
        """Follow ``task_id`` for ``listener`` until it is final or ``deadline`` (monotonic)."""
        now = self.clock.monotonic()
        tracked = self._tracked.get(task_id)
        if tracked is None:
            tracked = self._tracked[task_id] = Tracked(task_id, kind, last, now)
            tracked.profile = self.durations.profile_of(task_id, kind.name)
            delay = 0.0
            if last is not None:
                sketch = self._sketch(tracked)
                delay = self.cadence.first_delay(sketch, self._age(tracked, last, now))
            tracked.interval = delay
            self._schedule(tracked, now + delay)
        elif last is not None and tracked.last is None:
            tracked.last = last
        tracked.deadlines[listener] = deadline
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, next(self._seq), task_id, listener))
            self._clip_to_deadline(tracked, now)
        self._ensure_running()
        self._kick()

    def add_observer(self, observer: Callable[[Task], None]) -> None:
        """Call ``observer`` with every task state the scheduler takes in (polls and trusted
        callbacks, for any subscriber): the slot gate learns there when tasks end."""
        self._observers.append(observer)

    def untrack(self, task_id: str, listener: Listener) -> None:
        tracked = self._tracked.get(task_id)
        if tracked is None:
            return
        tracked.deadlines.pop(listener, None)
        if not tracked.deadlines:
            self._drop(tracked)

    def hint(self, task: Task, *, trusted: bool, relayed: bool = False) -> bool:
        """A callback said ``task`` is in this state. Returns whether it was news.

        A ``trusted`` (signature-verified) hint is taken as an observation; an untrusted one
        makes the task due for a poll now, which confirms or refutes it. Repeats and hints that
        would move a task backwards are dropped. Each hint not ``relayed`` from another process
        goes to :attr:`relay` too (news here or not: another process may follow the task).
        """
        if self.relay is not None and not relayed:
            self.relay(task, trusted)
        tracked = self._tracked.get(task.task_id)
        if tracked is None:
            if trusted:
                self._notify(task)  # nobody follows it, but the slot gate may hold its slot
            return False
        last = tracked.last
        if last is not None and STATUS_RANK[task.task_status] <= STATUS_RANK[last.task_status]:
            if task.task_status == last.task_status:
                tracked.covered = True  # callbacks do arrive for this task
            return False
        if task.kind != tracked.kind.name:
            task = attrs.evolve(task, kind=tracked.kind.name)  # a receiver set up for another kind
        if trusted:
            tracked.covered = True
            tracked.claim = None
            self._observed(tracked, task)
        else:
            tracked.claim = task.task_status
            if tracked.poll is not None:
                tracked.recheck = True  # that poll may have left before the change: ask again
            else:
                self._schedule(tracked, self.clock.monotonic())
                self._kick()
        return True

    # -- the loop ---------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(
                self._run(), name="kling_async poll scheduler"
            )

    def _kick(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.Task[None] | None = None
        try:
            while self._tracked:
                now = self.clock.monotonic()
                self._expire(now)
                wake_in = self._launch_due(now)
                if not self._tracked:
                    break
                self._wake = loop.create_future()
                if wake_in is not None:
                    timer = loop.create_task(self._alarm(wake_in, self._wake))
                await self._wake
                if timer is not None:
                    timer.cancel()
                    timer = None
        finally:
            if timer is not None:
                timer.cancel()
            self._wake = None

    async def _alarm(self, delay: float, wake: asyncio.Future[None]) -> None:
        await self.clock.sleep(delay)
        if not wake.done():
            wake.set_result(None)

    def _launch_due(self, now: float) -> float | None:
        """Start due polls; return seconds until the loop has something to do, or None."""
        polls = self._polls
        while polls and self._in_flight < self.max_in_flight:
            due, _, task_id, generation = polls[0]
            tracked = self._tracked.get(task_id)
            if tracked is None or generation != tracked.generation or tracked.poll is not None:
                heapq.heappop(polls)
                continue
            if due > now:
                break
            wait = self._take_token(now)
            if wait > 0:
                return wait
            heapq.heappop(polls)
            self._start_poll(tracked)
        next_times = []
        if polls and self._in_flight < self.max_in_flight:
            next_times.append(polls[0][0] - now)
        if self._deadlines:
            next_times.append(self._deadlines[0][0] - now)
        future = [t for t in next_times if t > 0]
        return min(future) if future else None

    def _take_token(self, now: float) -> float:
        """0 if a poll may start now (and spend the token), else seconds until one may."""
        if self.rate is None:
            return 0.0
        burst = max(1.0, self.rate)
        self._tokens = min(burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        # A hair's tolerance: a wait of 1e-12 s would add less than one float step to the
        # clock, and the refill after it could never reach a whole token (a busy loop).
        if self._tokens >= 1.0 - 1e-9:
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def _start_poll(self, tracked: Tracked) -> None:
        self._in_flight += 1
        self.polls_sent += 1
        tracked.polls += 1
        poll = asyncio.get_running_loop().create_task(self._poll(tracked), name="kling_async poll")
        tracked.poll = poll
        # Counted down when the task is done, not in its coroutine: a poll cancelled before it
        # ever ran (its watch closed at once) never runs a `finally`, and would count forever.
        poll.add_done_callback(self._poll_done)

    def _poll_done(self, _: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        self._kick()

    async def _poll(self, tracked: Tracked) -> None:
        try:
            task = await self._fetch(tracked.kind, tracked.task_id)
        except KlingError as error:
            tracked.poll = None
            if self._tracked.get(tracked.task_id) is tracked:
                self._poll_failed(tracked, error)
        except Exception as error:  # a bug, or a hostile answer (RecursionError...): not silent
            tracked.poll = None
            log.error(
                "poll of %s raised %s; trying again with backoff",
                tracked.task_id,
                type(error).__name__,
                exc_info=error,
            )
            if self._tracked.get(tracked.task_id) is tracked:
                self._retry_later(tracked, error)
        else:
            tracked.poll = None
            if self._tracked.get(tracked.task_id) is tracked:
                self._observed(tracked, task)
        finally:
            tracked.poll = None

    # -- what polls and callbacks tell us ---------------------------------------------------

    def _observed(self, tracked: Tracked, task: Task) -> None:
        last = tracked.last
        if last is not None and STATUS_RANK[task.task_status] < STATUS_RANK[last.task_status]:
            # An answer that left the server before a (verified) callback moved the task on:
            # statuses only go forward, so keep what we know and just poll again later.
            self._reschedule(tracked, last)
            return
        tracked.last = task
        tracked.failures = 0
        tracked.stale = 0
        unconfirmed = tracked.claim is not None and task.task_status != tracked.claim
        if tracked.claim is not None and not unconfirmed:
            tracked.covered = True
        # A claim that arrived while this poll was already under way is checked by one more
        # poll at once; one this poll answered is settled either way.
        recheck = unconfirmed and tracked.recheck
        tracked.recheck = False
        if not recheck:
            tracked.claim = None
        for listener in list(tracked.deadlines):
            listener.observe(task)
        self._notify(task)
        if task.is_terminal:
            self._learn(tracked, task)
            self._drop(tracked)
            return
        if self._tracked.get(tracked.task_id) is not tracked:
            return  # every listener left
        if recheck:
            self._schedule(tracked, self.clock.monotonic())
            return
        self._reschedule(tracked, task)

    def _notify(self, task: Task) -> None:
        for observer in self._observers:
            observer(task)

    def _reschedule(self, tracked: Tracked, task: Task) -> None:
        now = self.clock.monotonic()
        age = self._age(tracked, task, now)
        tracked.interval = self.cadence.next_delay(
            self._sketch(tracked), age, tracked.interval, tracked.covered
        )
        self._schedule(tracked, now + tracked.interval)
        self._clip_to_deadline(tracked, now)

    def _sketch(self, tracked: Tracked) -> DurationSketch:
        return self.durations.sketch(tracked.profile, tracked.kind.expected_seconds)

    def _learn(self, tracked: Tracked, task: Task) -> None:
        """A task that succeeded teaches how long its profile takes (server timestamps)."""
        self.durations.forget(tracked.task_id)
        if task.task_status is TaskStatus.SUCCEED and 0 < task.created_at < task.updated_at:
            seconds = (task.updated_at - task.created_at) / 1000
            self.durations.observe(tracked.profile, seconds, tracked.kind.expected_seconds)

    def _age(self, tracked: Tracked, task: Task, now: float) -> float:
        if task.created_at > 0:
            return max(0.0, self.clock.time() - task.created_at / 1000)
        return now - tracked.added

    def _poll_failed(self, tracked: Tracked, error: KlingError) -> None:
        stale = isinstance(error, AuthenticationError) and error.token_stale
        tracked.stale = tracked.stale + 1 if stale else 0
        if is_fatal(error, tracked.stale):
            log.error("watch stopped: %s", error)
            for listener in list(tracked.deadlines):
                listener.fatal(error)
            return
        if stale:  # a fresh token is minted for the next request: try it at once
            self._schedule(tracked, self.clock.monotonic())
            return
        if retryable_read(error):
            self._retry_later(tracked, error)
            return
        for listener in list(tracked.deadlines):
            listener.fail(tracked.task_id, error)
        self._drop(tracked)

    def _retry_later(self, tracked: Tracked, error: BaseException) -> None:
        tracked.failures += 1
        delay = self._retry_delay(tracked.failures, error)
        log.info("poll of %s failed (%s); again in %.2fs", tracked.task_id, error, delay)
        now = self.clock.monotonic()
        self._schedule(tracked, now + delay)
        self._clip_to_deadline(tracked, now)

    def _expire(self, now: float) -> None:
        deferred = []
        while self._deadlines and self._deadlines[0][0] <= now:
            entry = heapq.heappop(self._deadlines)
            deadline, _, task_id, listener = entry
            tracked = self._tracked.get(task_id)
            if tracked is None or tracked.deadlines.get(listener) != deadline:
                continue
            if tracked.poll is not None:
                deferred.append(entry)  # let the poll at the deadline answer first
                continue
            listener.expire(task_id, tracked.last)
            self.untrack(task_id, listener)
        for entry in deferred:
            heapq.heappush(self._deadlines, entry)

    # -- bookkeeping ------------------------------------------------------------------------

    def _schedule(self, tracked: Tracked, due: float) -> None:
        tracked.generation += 1
        tracked.due = due
        heapq.heappush(self._polls, (due, next(self._seq), tracked.task_id, tracked.generation))

    def _clip_to_deadline(self, tracked: Tracked, now: float) -> None:
        """Make sure a task is polled once more right at its earliest deadline."""
        deadlines = [d for d in tracked.deadlines.values() if d is not None]
        if not deadlines:
            return
        earliest = min(deadlines)
        if tracked.poll is None and tracked.due > earliest:
            self._schedule(tracked, max(now, earliest))

    def _drop(self, tracked: Tracked) -> None:
        if self._tracked.get(tracked.task_id) is tracked:
            del self._tracked[tracked.task_id]
        if tracked.poll is not None:
            tracked.poll.cancel()
        self._kick()

    async def aclose(self) -> None:
        """Stop polling everything and wait until nothing of ours is left running."""
        pending: list[asyncio.Task[None]] = [t.poll for t in self._tracked.values() if t.poll]
        self._tracked.clear()
        if self._loop is not None:
            pending.append(self._loop)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._loop = None
