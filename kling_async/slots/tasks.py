"""``SlotTasks``: the running tasks that hold a :class:`~kling_async.slots.SlotGate`'s slots.

A task holds its slot until it ends (kling-api.md §7.1). The gate learns of the end from the
client's poll scheduler: every observation anyone makes (their ``watch()``/``wait()``, trusted
callbacks) reaches :meth:`SlotTasks.observed`; and while :attr:`following`, these tasks are
tracked through the same scheduler (so a task someone watches already is polled once for both).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import KlingError
from ..kinds import kind_named
from ..models import Task
from ..polling.scheduler import PollScheduler
from .slot import Slot

__all__ = ["SlotTasks"]


class SlotTasks:
    """Task id -> the slot its task holds, for tasks not yet seen ending; a scheduler
    :class:`~kling_async.polling.Listener` while following them."""

    def __init__(
        self, scheduler: PollScheduler | None, on_fatal: Callable[[KlingError], None]
    ) -> None:
        self._scheduler = scheduler
        self._on_fatal = on_fatal
        self._slots: dict[str, Slot] = {}
        self.weight = 0  # slots held by these tasks
        self.following = False

    def add(self, slot: Slot, task: Task) -> None:
        self._slots[task.task_id] = slot
        self.weight += slot.weight
        if self.following:
            self._track(task)

    def remove(self, slot: Slot) -> None:
        """``slot`` was given back: stop counting (and following) its task."""
        task = slot.task
        if task is not None and self._slots.get(task.task_id) is slot:
            del self._slots[task.task_id]
            self.weight -= slot.weight
            if self.following and self._scheduler is not None:
                self._scheduler.untrack(task.task_id, self)

    def observed(self, task: Task) -> None:
        """Someone saw ``task`` (a poll, a callback): if it is ours and ended, free its slot."""
        if task.is_terminal:
            slot = self._slots.get(task.task_id)
            if slot is not None:
                slot.release(ended=True)

    def follow(self) -> None:
        if self.following or self._scheduler is None:
            return
        self.following = True
        for slot in list(self._slots.values()):
            assert slot.task is not None
            self._track(slot.task)

    def unfollow(self) -> None:
        if not self.following or self._scheduler is None:
            return
        self.following = False
        for task_id in list(self._slots):
            self._scheduler.untrack(task_id, self)

    def _track(self, task: Task) -> None:
        if self._scheduler is not None:
            self._scheduler.track(task.task_id, kind_named(task.kind), self, last=task)

    # -- Listener (what the scheduler says of the tasks followed) ------------------------------

    def observe(self, task: Task) -> None:
        self.observed(task)

    def expire(self, task_id: str, last: Task | None) -> None:  # no deadlines are set
        pass

    def fail(self, task_id: str, error: KlingError) -> None:
        # The task cannot be polled (gone?): stop counting it rather than wait on it forever;
        # if it still runs, the next 1303 shrinks the limit to what we hold.
        slot = self._slots.get(task_id)
        if slot is not None:
            slot.release()

    def fatal(self, error: KlingError) -> None:
        self._on_fatal(error)
