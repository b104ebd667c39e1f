"""``client.watch()``: an async iterator of status changes for a set of tasks.

:class:`TaskWatch` yields :class:`StatusChange` (the first observation of each task, then each
change, never a repeat) and ends when every task is final. Leaving its loop, cancelling its
consumer or closing it stops polling its tasks at once; ``unfinished`` then says which tasks
were still running. Its tasks are polled by the client's one
:class:`~kling_async.polling.PollScheduler`, to which a watch is a :class:`Listener`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterable
from typing import Literal

from ..errors import KlingError, TaskTimeoutError
from ..kinds import Kind, kind_named
from ..models import StatusChange, Task, TaskStatus
from .scheduler import PollScheduler

__all__ = ["TaskWatch"]


class TaskWatch:
    """An async iterator of :class:`StatusChange` for a set of tasks (``client.watch()``).

    ::

        async with kling.watch(tasks, timeout=900) as changes:
            async for change in changes:
                print(change.task_id, change.previous, "->", change.current)

    ``timeout`` (seconds, per task, from when it is added) ends a task with a change marked
    ``timed_out`` (``on_timeout="raise"`` raises :class:`TaskTimeoutError` instead); the task
    keeps running on the server. Tasks can be added while iterating with :meth:`add`; an
    ``open_ended`` watch waits for more until :meth:`seal` is called.

    No status appears twice in a task's stream. Statuses only move forward (a late answer or
    callback never moves a task back). An ``UNKNOWN`` observation (a ``task_status`` this
    version does not know; ``change.task.raw_status`` has it) is a change only while the task
    has not been seen ``processing``: as the first observation or after ``submitted``, then at
    most once. Once a task was seen ``processing``, an ``UNKNOWN`` answer is not a change: the
    last known status stands and polling goes on, so ``processing -> UNKNOWN -> processing``
    never reaches the stream.

    The watch ends with an error (raised by the iteration) when no task of the account can be
    followed any more: credentials refused (1000-1002), or a token refused again right after a
    fresh one was minted (1003/1004: a clock far off, named in the message), 1100-1103 and
    policy refusals. A poll that fails otherwise — a Kling error or any other exception — is
    logged and tried again with backoff; it never stops a task silently.
    """

    def __init__(
        self,
        scheduler: PollScheduler,
        tasks: Iterable[Task | str],
        *,
        kind: str = "video-extend",
        timeout: float | None = None,
        on_timeout: Literal["mark", "raise"] = "mark",
        open_ended: bool = False,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be > 0 seconds or None")
        if on_timeout not in ("mark", "raise"):
            raise ValueError("on_timeout must be 'mark' or 'raise'")
        self._scheduler = scheduler
        self._clock = scheduler.clock
        self._kind = kind
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._queue: collections.deque[StatusChange] = collections.deque()
        self._status: dict[str, TaskStatus | None] = {}
        self._last: dict[str, Task | None] = {}
        self._kinds: dict[str, Kind] = {}
        self._errored: set[str] = set()
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._sealed = not open_ended
        self._started = False
        self._pending_adds = list(tasks)

    # -- public -----------------------------------------------------------------------------

    def add(self, task: Task | str, *, kind: str | None = None) -> None:
        """Follow one more task (a :class:`Task`, or an id of ``kind``)."""
        if self._closed:
            raise RuntimeError("this watch is closed")
        if isinstance(task, Task):
            task_id, spec = task.task_id, kind_named(task.kind)
        else:
            if not isinstance(task, str) or not task.strip():
                raise ValueError("a task id must be a non-empty string")
            task_id, spec = task, kind_named(kind or self._kind)
        if task_id in self._status:
            return
        self._status[task_id] = None
        self._last[task_id] = None
        self._kinds[task_id] = spec
        if isinstance(task, Task):
            self.observe(task)
            if task.is_terminal:
                return
        deadline = None if self._timeout is None else self._clock.monotonic() + self._timeout
        self._scheduler.track(
            task_id,
            spec,
            self,
            last=task if isinstance(task, Task) else None,
            deadline=deadline,
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the iteration ended): no task can be added."""
        return self._closed

    @property
    def unfinished(self) -> list[Task | str]:
        """Tasks not yet final: the last :class:`Task` seen, or the id if none was seen yet."""
        out: list[Task | str] = []
        for task_id, last in self._last.items():
            if task_id in self._errored or (last is not None and last.is_terminal):
                continue
            out.append(task_id if last is None else last)
        return out

    def __aiter__(self) -> AsyncIterator[StatusChange]:
        if self._started:
            raise RuntimeError("a TaskWatch can be iterated only once")
        self._started = True
        return self._iterate()

    async def __aenter__(self) -> TaskWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def seal(self) -> None:
        """An ``open_ended`` watch ends once its tasks are final *and* it is sealed: no more
        tasks will be added."""
        self._sealed = True
        self._wake()

    def close(self) -> None:
        """Stop following every task now. Idempotent."""
        self._closed = True
        for task_id in list(self._kinds):
            self._scheduler.untrack(task_id, self)
        self._wake()

    # -- the iterator -----------------------------------------------------------------------

    async def _iterate(self) -> AsyncIterator[StatusChange]:
        try:
            pending, self._pending_adds = self._pending_adds, []
            for task in pending:
                self.add(task)
            loop = asyncio.get_running_loop()
            while True:
                while self._queue:
                    yield self._queue.popleft()
                if self._error is not None:
                    raise self._error
                if self._closed or (not self._kinds and self._sealed):
                    return
                self._waiter = loop.create_future()
                await self._waiter
        finally:
            # Reached on exhaustion, on break (when the generator is closed), on cancellation.
            self.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _emit(self, change: StatusChange) -> None:
        self._queue.append(change)
        if change.is_final:
            self._kinds.pop(change.task_id, None)
        self._wake()

    # -- Listener ---------------------------------------------------------------------------

    def observe(self, task: Task) -> None:
        task_id = task.task_id
        if task_id not in self._kinds:
            return
        previous = self._status.get(task_id)
        if task.task_status is TaskStatus.UNKNOWN and previous is TaskStatus.PROCESSING:
            return  # not a change (see the class docstring): the known status stands
        self._last[task_id] = task
        if previous == task.task_status:
            return
        self._status[task_id] = task.task_status
        self._emit(StatusChange(task_id, previous, task.task_status, task, self._clock.time()))

    def expire(self, task_id: str, last: Task | None) -> None:
        if task_id not in self._kinds:
            return
        kind = self._kinds[task_id].name
        if self._on_timeout == "raise":
            self._kinds.pop(task_id, None)
            self._error = TaskTimeoutError(task_id, kind=kind, timeout=self._timeout, last=last)
            self._wake()
            return
        status = last.task_status if last is not None else TaskStatus.UNKNOWN
        task = last or Task(kind=kind, task_id=task_id, task_status=TaskStatus.UNKNOWN)
        self._emit(
            StatusChange(task_id, self._status.get(task_id), status, task, self._clock.time(), True)
        )

    def fail(self, task_id: str, error: KlingError) -> None:
        if task_id not in self._kinds:
            return
        self._errored.add(task_id)
        last = self._last.get(task_id)
        kind = self._kinds[task_id].name
        task = last or Task(kind=kind, task_id=task_id, task_status=TaskStatus.UNKNOWN)
        self._emit(
            StatusChange(
                task_id,
                self._status.get(task_id),
                task.task_status,
                task,
                self._clock.time(),
                error=error,
            )
        )

    def fatal(self, error: KlingError) -> None:
        if self._error is None:
            self._error = error
        self._wake()
