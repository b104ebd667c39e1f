"""What a look-up for a lost create proves, and who may claim which task (issue #12).

:class:`Lookup` is a look-up's answer; :class:`Turns` makes creates of one parent video take
turns on a relay; :class:`Doubts` remembers the creates that may own a task not seen yet, so a
scan never hands one of their tasks to another request; :func:`unknown_children` reads a
scan's pages.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Container, Hashable

import attrs

from .errors import KlingError
from .models import Task

__all__ = ["SCAN_PAGES", "Doubts", "Lookup", "Turns", "unknown_children"]

SCAN_PAGES = 5  # a scan reads at most this many pages of 100


@attrs.frozen
class Lookup:
    """What looking for the task of a create with a lost answer found.

    ``task``: the task (found by ``external_task_id``, or the one unknown candidate of a
    relay scan). ``absent``: an authoritative "not found" (official API, by
    ``external_task_id``) — the only look-up result after which the create may be sent
    again. Otherwise the create stays ambiguous: ``candidates`` lists tasks a scan could not
    tell apart, ``failure`` the error of a look-up that could not run.
    """

    task: Task | None = None
    absent: bool = False
    candidates: tuple[str, ...] = ()
    failure: KlingError | None = None


class Turns:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: collections.Counter[str] = collections.Counter()

    @contextlib.asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


class Doubts:
    """Parent video id -> refs of creates that may own a task this client has not seen (their
    look-up failed, or met several candidates). While another create of a video is in doubt,
    a scan's single unknown task of it could be that one's: it is not claimed."""

    def __init__(self) -> None:
        self._refs: dict[str, set[Hashable]] = {}

    def add(self, parent: str, ref: Hashable) -> None:
        self._refs.setdefault(parent, set()).add(ref)

    def others(self, parent: str, ref: Hashable | None) -> set[Hashable]:
        """The creates of ``parent`` in doubt, but ``ref``."""
        return self._refs.get(parent, set()) - {ref}

    def settle(self, parent: str, ref: Hashable | None, found: Lookup) -> None:
        """After ``ref``'s look-up: out of doubt if it claimed a task, or if a scan ran and saw
        nothing unknown (no unseen task to fear); in doubt otherwise."""
        if found.task is None and (found.failure is not None or found.candidates):
            self.add(parent, ref)
            return
        refs = self._refs.get(parent)
        if refs is not None:
            refs.discard(ref)
            if not refs:
                del self._refs[parent]


async def unknown_children(
    pages: AsyncIterable[list[Task]], video_id: str, since_ms: float, known: Container[str]
) -> tuple[list[Task], bool]:
    """The tasks of ``pages`` continuing ``video_id``, created since ``since_ms`` and not
    ``known``; and whether every task that may be one was seen.

    The list's order is undocumented (kling-api.md 4.2): only a page seen to run newest first
    that reaches back before ``since_ms`` shows that later pages hold nothing newer; a scan
    that stops at :data:`SCAN_PAGES` without that may have missed one.
    """
    matches: list[Task] = []
    read = 0
    async for page in pages:
        read += 1
        for task in page:
            parent = task.task_info.parent_video
            if (
                parent is not None
                and parent.id == video_id
                and task.created_at >= since_ms
                and task.task_id not in known
            ):
                matches.append(task)
        newest_first = page[0].created_at > page[-1].created_at
        if newest_first and min(t.created_at for t in page) < since_ms:
            break
        if read >= SCAN_PAGES:
            return matches, newest_first
    return matches, True
