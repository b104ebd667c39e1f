"""What a look-up for a lost create proves, and who may claim which task (issue #12).

:class:`LostTaskFinder` looks for the task of a create whose answer was lost, and
:class:`Lookup` is what it found: on the official API, "not found" by ``external_task_id`` is
authoritative (``absent``); a look-up that itself fails (a gateway's 502 for a while) proves
nothing; on a relay nothing proves absence (the list route is not documented, and a scan that
finds zero or several candidates cannot tell), so a scan claims a task only when it is the
single unknown task of that parent video since just before the send — made the common case by
construction: at most one create per parent video has an unsettled answer at a time
(:meth:`Creator.turn <kling_async.creates.Creator.turn>`). :class:`Turns` makes creates of
one key (a parent video on a relay, a caller's ``external_task_id``) take turns;
:class:`Doubts` remembers the creates that may own a task not seen yet, so a scan never hands
one of their tasks to another request; :func:`unknown_children` reads a scan's pages.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Container, Hashable

import attrs

from .clock import Clock
from .errors import KlingError
from .kinds import Kind, kind_named
from .models import Task
from .polling.reads import TaskReader
from .requests import CreateRequest

__all__ = [
    "SCAN_PAGES",
    "Doubts",
    "LostTaskFinder",
    "Lookup",
    "TurnExpired",
    "Turns",
    "unknown_children",
]

log = logging.getLogger("kling_async")

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


class TurnExpired(Exception):
    """A :class:`Turns` wait ended (its ``expire``) before the turn came."""


class Turns:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: collections.Counter[str] = collections.Counter()

    @contextlib.asynccontextmanager
    async def __call__(
        self, key: str, *, expire: Awaitable[None] | None = None
    ) -> AsyncIterator[None]:
        """Hold ``key``'s turn. With ``expire`` (an awaitable that ends when waiting is over,
        e.g. a sleep on the client's clock), :class:`TurnExpired` if the turn has not come
        by then."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            if expire is None:
                await lock.acquire()
            else:
                await _acquire_before(lock, expire)
            try:
                yield
            finally:
                lock.release()
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


async def _acquire_before(lock: asyncio.Lock, expire: Awaitable[None]) -> None:
    acquiring = asyncio.ensure_future(lock.acquire())
    timer = asyncio.ensure_future(expire)
    try:
        await asyncio.wait((acquiring, timer), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled while waiting
        timer.cancel()
        if not acquiring.done():
            acquiring.cancel()
        elif not acquiring.cancelled():
            lock.release()  # taken just as the caller was cancelled
        raise
    timer.cancel()
    if not acquiring.done():
        acquiring.cancel()  # gives up its place in line; it never takes the lock
        raise TurnExpired


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


# How far back (seconds, server clock) a lost create is searched for in the task list when the
# endpoint gives us no external_task_id to look it up by. Wide enough for modest clock skew;
# tasks this client knows it created are never taken for the lost one.
_SCAN_SLACK = 120.0
_KNOWN_IDS = 100_000


class LostTaskFinder:
    """Finds the task of a create whose answer was lost, for one client: by
    ``external_task_id``, or by a scan of the task list for the one unknown task of its parent
    video. Knows the tasks the client created or claimed, so a scan never takes one of them
    for the lost task and no task is claimed by two requests."""

    def __init__(self, reader: TaskReader, *, flavour: str, clock: Clock) -> None:
        self._reader = reader
        self.flavour = flavour
        self.clock = clock
        self._created: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._doubts = Doubts()

    def remember(self, task_id: str) -> None:
        self._created[task_id] = None
        if len(self._created) > _KNOWN_IDS:
            self._created.popitem(last=False)

    def knows(self, task_id: str) -> bool:
        return task_id in self._created

    def doubt(self, parent: str | None, ref: Hashable) -> None:
        if parent is not None:
            self._doubts.add(parent, ref)

    async def find(
        self,
        request: CreateRequest,
        sent_at: float,
        delays: tuple[float, ...],
        ref: Hashable | None,
        *,
        wait: bool = True,
        final: bool = False,
    ) -> Lookup:
        """Look for the task a create with a lost answer may have made (see :class:`Lookup`).

        By ``external_task_id`` where one was sent; else (and on a relay, which may drop the
        id, also when that finds nothing), for kinds that start from a video, by scanning the
        list for the one unknown task of that video created since the send; else there is
        nothing to look by. A task found is remembered (claimed). ``delays``: seconds before
        each try (slept only with ``wait``), tried again only while nothing is found; with
        ``final`` (the server finished with the request) the first look-up that answers is all
        there is to know — "absent" on the official API, or a relay scan's verdict;
        ``ref``: the create's name, for :class:`Doubts`.
        """
        kind = kind_named(request.kind)
        external = getattr(request, "external_task_id", None)
        parent = request.parent_video_id
        if external is None and parent is None:
            return Lookup()
        # A relay may drop the id (its documented body has none): there a scan follows too.
        scans = parent is not None and (external is None or self.flavour == "relay")
        result = Lookup()
        for delay in delays:
            if delay and wait:
                await self.clock.sleep(delay)
            try:
                if external is not None:
                    task = await self._reader.find_task(external, kind=kind.name)
                    result = Lookup(task=task, absent=task is None and self.flavour == "official")
                if scans and result.task is None:
                    assert parent is not None
                    result = await self._scan_for(kind, parent, sent_at, ref)
            except KlingError as exc:  # the look-up failed: that is no answer
                log.warning("%s: looking up a lost create failed: %s", kind.name, exc)
                result = Lookup(failure=exc)
            if result.task is not None:
                log.info("%s: found task %s after a lost answer", kind.name, result.task.task_id)
                self.remember(result.task.task_id)
                break
            if final and result.failure is None:
                break  # the server had finished with it: a later look shows no more
        if scans:
            assert parent is not None
            self._doubts.settle(parent, ref, result)
        return result

    async def _scan_for(
        self, kind: Kind, video_id: str, sent_at: float, ref: Hashable | None
    ) -> Lookup:
        """The one task for ``video_id`` created since ``sent_at`` that we do not know yet,
        claimed only if no other create of that video is in doubt.

        A relay may have no list route (404/1203): that raises, and so proves nothing.
        """
        since_ms = (sent_at - _SCAN_SLACK) * 1000
        pages = self._reader.list_tasks(kind.name, page_size=100)
        matches, complete = await unknown_children(pages, video_id, since_ms, self._created)
        others = self._doubts.others(video_id, ref)
        if len(matches) == 1 and not others and complete:
            return Lookup(task=matches[0])
        if matches:
            log.warning(
                "%s: %d unknown task(s) for video %s since the lost create, %d other create(s)"
                " of it in doubt; not guessing",
                kind.name,
                len(matches),
                video_id,
                len(others),
            )
        return Lookup(candidates=tuple(t.task_id for t in matches))
