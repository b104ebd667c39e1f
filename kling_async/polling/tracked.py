"""What the :class:`~kling_async.polling.PollScheduler` keeps per task, and what it tells
the :class:`Listener` subscribers that follow one.

A :class:`Tracked` is one heap entry's task: its listeners (each with its deadline), when it is
due, the interval the cadence chose, and what its polls have seen (the last task, failures in a
row, stale tokens in a row). Statuses only move forward (:data:`STATUS_RANK`), and
:func:`is_fatal` names the errors no task of the account can get past.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..errors import AccountError, AuthenticationError, KlingError, PolicyError
from ..kinds import Kind
from ..models import Task, TaskStatus

__all__ = ["STATUS_RANK", "Fetch", "Listener", "Tracked", "is_fatal"]

Fetch = Callable[[Kind, str], Awaitable[Task]]

# Statuses only move forward; a late callback must not move a task back.
STATUS_RANK = {
    TaskStatus.SUBMITTED: 0,
    TaskStatus.PROCESSING: 1,
    TaskStatus.UNKNOWN: 1,
    TaskStatus.SUCCEED: 2,
    TaskStatus.FAILED: 2,
}


class Listener(Protocol):
    """What the scheduler tells a subscriber about a task it follows."""

    def observe(self, task: Task) -> None: ...

    def expire(self, task_id: str, last: Task | None) -> None: ...

    def fail(self, task_id: str, error: KlingError) -> None: ...

    def fatal(self, error: KlingError) -> None: ...


class Tracked:
    """What the scheduler keeps of one followed task: its listeners, when it is due, and what
    its polls have seen so far."""

    __slots__ = (
        "added",
        "claim",
        "covered",
        "deadlines",
        "due",
        "failures",
        "generation",
        "interval",
        "kind",
        "last",
        "poll",
        "polls",
        "profile",
        "recheck",
        "stale",
        "task_id",
    )

    def __init__(self, task_id: str, kind: Kind, last: Task | None, added: float) -> None:
        self.task_id = task_id
        self.kind = kind
        self.last = last
        self.added = added
        self.deadlines: dict[Listener, float | None] = {}
        self.poll: asyncio.Task[None] | None = None
        self.generation = 0
        self.due = 0.0
        self.interval = 0.0
        self.failures = 0
        self.covered = False
        self.claim: TaskStatus | None = None
        self.recheck = False
        self.polls = 0
        self.stale = 0  # polls in a row refused for a stale token (1003/1004)
        self.profile = kind.name


def is_fatal(error: KlingError, stale_in_a_row: int) -> bool:
    """Errors that no task of this account can get past: stop the whole watch.

    1003/1004 make the transport mint a fresh token, so the next poll may pass; refused
    again with that fresh token, the credentials (or the clock) are wrong for good.
    """
    if isinstance(error, AuthenticationError):
        return not error.token_stale or stale_in_a_row > 1
    return isinstance(error, (AccountError, PolicyError))
