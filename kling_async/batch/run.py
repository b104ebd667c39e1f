"""``extend_many``: many video extensions, each ending in a known outcome, none paid twice.

For every request the batch:

1. takes a slot from the client's :class:`SlotGate` (held until the task *ends*, as Kling
   counts it);
2. writes its intent to the journal (with the ``external_task_id`` it will send), then the
   moment it is sent, then the task id it got: each write is committed before the next step;
3. follows the task on one open-ended watch and reports its :class:`Outcome`.

1303 gives the slot back, shrinks the gate and re-queues the request; 1302 pauses every
submitter; 1102 stops the batch's creates: created tasks are still followed to the end and the
rest are reported ``not_sent``. A second run with the same journal resumes: finished requests are
reported without a request, created tasks are watched, and an intent whose answer was lost (the
process died, or the create was ambiguous) is looked up before it is ever sent again: it is sent
only if the look-up proves it absent (official API: "not found" by ``external_task_id``), or if
the caller opted in with ``resend_ambiguous=True``; otherwise it is reported ``ambiguous`` again.

On a relay, creates of one parent video take turns (:meth:`Creator.turn`): each holds its turn
from the look-up and the POST until its task id is journalled, so a scan — in this run or a
resumed one — meets at most one unknown task per parent. In a shared batch the turn is also
the batch's, across its workers (:meth:`SharedJournal.turn`).

A shared journal's database may go away for a while: its calls wait the outage out. Past the
outage bound they raise :class:`DatabaseUnavailableError`, and the batch stops — no more
creates, slots given back, the error raised after the outcomes already known — leaving the rest
to a run again, which resumes from the journal. In a shared batch each request's final outcome
is yielded by one worker: the one whose fenced write recorded it (a worker whose request was
taken over while its lease had run out leaves it to the taker). Outcomes marked
``from_journal`` were finished before this worker reached them (by an earlier run, or by
another worker): summing the other outcomes over the workers counts each request once.

This module holds the batch's loop: reading the requests, following the tasks on the watch and
handing outcomes on. What happens to each request it reads — resumed, slotted, sent, settled —
and the bookkeeping of which request owns which task is :class:`~.submit.Submitter`'s, the other
half of :class:`Batch`; both share the state ``Batch.__init__`` sets.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

from ..creates import Creator
from ..errors import DatabaseUnavailableError, KlingError
from ..journal import Journal, JournalEntry, SharedJournal
from ..models import StatusChange, Task, TaskStatus
from ..polling.watch import TaskWatch
from ..requests import CreateRequest
from ..serde import (
    task_to_json,
)
from .callbacks import CallbackClaims, ListeningReceiver
from .inputs import RequestLike, as_request, each, request_key
from .outcomes import BatchReport, Outcome, OutcomeKind, Progress
from .preflight import pending_requests
from .resume import mark_known
from .shared import (
    JournalArg,
    check_journal,
    intent_of,
    open_journal,
    register,
)
from .submit import Submitter

__all__ = [
    "Batch",
    "BatchReport",
    "ListeningReceiver",
    "Outcome",
    "OutcomeKind",
    "Progress",
    "RequestLike",
    "request_key",
]

log = logging.getLogger("kling_async")


class WatchFactory(Protocol):
    """What a batch needs to follow its tasks: ``KlingClient.watch``, open-ended."""

    def __call__(
        self, tasks: Iterable[Task | str], *, timeout: float | None, open_ended: bool
    ) -> TaskWatch: ...


_DONE = object()


class Batch(Submitter):
    """What ``client.extend_many()`` returns: an async iterator of :class:`Outcome`.

    ::

        batch = kling.extend_many(requests, journal="batch.sqlite", slots=10)
        async for outcome in batch:
            print(outcome.key, outcome.outcome, batch.progress.done)
        print(batch.report().to_json())
    """

    def __init__(
        self,
        creator: Creator,
        watch: WatchFactory,
        requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
        *,
        journal: JournalArg = None,
        batch: str | None = None,
        slots: int | None = None,
        timeout: float | None = None,
        resend_ambiguous: bool = False,
        callback_receiver: ListeningReceiver | None = None,
        callback_wait: float = 120.0,
        preflight: Callable[[list[CreateRequest]], Awaitable[None]] | None = None,
    ) -> None:
        self._preflight = preflight
        check_journal(journal, batch)
        self._client = creator
        self._claims = (
            None
            if callback_receiver is None
            else CallbackClaims(creator, callback_receiver, callback_wait)
        )
        self._resend_ambiguous = resend_ambiguous
        self._watch = watch
        self._requests = requests
        self._journal_arg = journal
        self._batch_name = batch
        self._journal: Journal | SharedJournal | None = None
        self._timeout = timeout
        self.gate = creator.gate  # the client's: batch and ad-hoc creates share the account
        if slots is not None:
            self.gate.know(slots)
        self._stopped = asyncio.Event()
        self._finals = 0
        self._recorded_limit: int | None = None
        self._outcomes: list[Outcome] = []
        # Outcomes (and _DONE, or an error to raise) not yet handed to the caller.
        self._outbox: collections.deque[Any] = collections.deque()
        self._outbox_waiter: asyncio.Future[None] | None = None
        self._keys: dict[str, str] = {}  # task id -> request key
        self._by_key: dict[str, CreateRequest] = {}
        self._status: dict[str, TaskStatus] = {}  # live tasks only
        self._done: collections.Counter[str] = collections.Counter()
        self._stop_reason: KlingError | None = None
        self._halted: DatabaseUnavailableError | None = None  # the journal's database is gone
        self._input_error: Exception | None = None
        self._sending: dict[str, CreateRequest] = {}  # key -> prepared request, while POSTing
        self._background: set[asyncio.Task[Any]] = set()
        self._handling: set[str] = set()  # keys started and without an outcome yet
        self._ended = asyncio.Event()  # an outcome came: a waiting worker looks again
        self._started_at = time.monotonic()
        self._total = 0
        self._started = False

    # -- public -----------------------------------------------------------------------------

    @property
    def progress(self) -> Progress:
        statuses = collections.Counter(self._status.values())
        done = sum(self._done.values())
        return Progress(
            total=self._total,
            waiting=self._total - len(self._status) - done,
            submitted=statuses[TaskStatus.SUBMITTED],
            processing=statuses[TaskStatus.PROCESSING] + statuses[TaskStatus.UNKNOWN],
            succeed=self._done["succeed"],
            failed=self._done["failed"],
            other=done - self._done["succeed"] - self._done["failed"],
            slots_in_use=self.gate.in_use,
            slot_limit=self.gate.allowed,
        )

    @property
    def outcomes(self) -> list[Outcome]:
        """Every outcome known so far, delivered or not."""
        return list(self._outcomes)

    @property
    def undelivered(self) -> list[Outcome]:
        """Outcomes known but not yet yielded to the caller (it left the loop, or it was
        cancelled, before they came up). With :attr:`running` and :attr:`unsettled` this
        accounts for every task the batch created: each is in exactly one of the outcomes
        yielded, ``undelivered``, ``running`` or ``unsettled``, at every moment."""
        return [item for item in self._outbox if isinstance(item, Outcome)]

    @property
    def running(self) -> dict[str, str]:
        """Request key -> task id of every task created and not yet ended. After leaving the
        loop early these run on at Kling (and hold account slots): watch them again with
        ``client.watch()``."""
        return {self._keys[task_id]: task_id for task_id in self._status}

    @property
    def unsettled(self) -> dict[str, CreateRequest]:
        """Request key -> the request as sent, for creates cut off after sending, when the loop
        was left while their answer was awaited: a task may exist for each. Look one up by
        its ``external_task_id`` (official API: always set) with ``client.find_task()``; a
        journalled batch does this itself when it is run again."""
        return dict(self._sending)

    def report(self) -> BatchReport:
        return BatchReport.from_outcomes(self._outcomes, time.monotonic() - self._started_at)

    def __aiter__(self) -> AsyncIterator[Outcome]:
        if self._started:
            raise RuntimeError("a Batch can be iterated only once")
        self._started = True
        return self._iterate()

    # -- running ----------------------------------------------------------------------------

    async def _iterate(self) -> AsyncIterator[Outcome]:
        self._started_at = time.monotonic()
        self._journal, owns_journal = await open_journal(self._journal_arg, self._batch_name)
        watch = self._watch((), timeout=self._timeout, open_ended=True)
        workers: list[asyncio.Task[None]] = []
        if self._claims is not None:
            self._claims.start()
        try:
            entries = await self._journal.entries() if self._journal else []
            mark_known(self._client, entries)
            journalled = {e.key: e for e in entries}
            if self._preflight is not None:  # every request read and checked, none sent yet
                self._requests = await pending_requests(self._requests, journalled, self._preflight)
            if self._journal is not None and not self.gate.known:
                learned = await self._journal.slot_limit()
                if learned is not None:
                    self.gate.resume_at(learned)  # a resumed batch starts where it left off
            await self._load_durations()
            workers = [
                asyncio.ensure_future(self._produce(journalled, watch)),
                asyncio.ensure_future(self._follow(watch)),
            ]
            while True:
                while not self._outbox:
                    self._outbox_waiter = asyncio.get_running_loop().create_future()
                    await self._outbox_waiter
                # Taken and yielded in one step: a cancellation cannot fall between them.
                item = self._outbox.popleft()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
            if self._input_error is not None:
                raise self._input_error
        finally:
            if self._claims is not None:
                self._claims.close()
            watch.close()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            if self._journal is not None and owns_journal:
                await self._journal.close()

    async def _produce(self, journalled: dict[str, JournalEntry], watch: Any) -> None:
        submits: set[asyncio.Task[None]] = set()
        try:
            try:
                await self._feed(journalled, watch, submits)
            except DatabaseUnavailableError as exc:  # not the input's fault: the batch stops
                self._halt(exc)
                return
            except Exception as exc:
                # A bad request (or the caller's iterable failing) stops new creates, but the
                # tasks already created are followed to their end and yielded before the error
                # is raised: raising at once would abandon paid tasks the caller never saw.
                self._input_error = exc
            if submits:
                await asyncio.gather(*submits)
            watch.seal()
        except Exception as exc:  # surface in the consumer, not as a lost task exception
            self._push(exc)
            raise
        finally:
            # Left early (the consumer stopped): end the creates still in flight with us, so
            # none runs on unseen; a cut-off one stays in `unsettled`.
            for job in submits:
                job.cancel()
            if submits:
                await asyncio.gather(*submits, return_exceptions=True)

    async def _feed(
        self, journalled: dict[str, JournalEntry], watch: Any, submits: set[asyncio.Task[None]]
    ) -> None:
        """Read the requests and start a submit for each that needs a POST, as slots allow."""
        seen: collections.Counter[str] = collections.Counter()
        if isinstance(self._journal, SharedJournal):
            await register(self._journal, self._client, self._requests)
        async for item in each(self._requests):
            request = as_request(item)
            key = request_key(request, seen)
            if key in self._by_key:
                raise ValueError(f"two requests share the key {key!r} (external_task_id?)")
            self._by_key[key] = request
            entry = journalled.get(key)
            if isinstance(self._journal, SharedJournal):
                intent = intent_of(self._client, key, request)
                entry = await self._journal.claim(key, intent.request)
                if entry is None:
                    continue  # another live worker has it
            await self._start(key, request, entry, watch, submits)
        if isinstance(self._journal, SharedJournal):
            await self._take_over(self._journal, watch, submits)

    async def _follow(self, watch: Any) -> None:
        try:
            async for change in watch:
                self._on_change(change)
                if change.is_final:
                    self._remember_limit()
                    self._remember_durations()
            # A shared batch's last outcomes wait for their fenced writes (_conclude).
            # asyncio.wait, not gather: gather of finished writes returns without yielding
            # (3.12+), so their done callbacks could never empty the set.
            while self._background:
                await asyncio.wait(set(self._background))
            self._push(_DONE)
        except Exception as exc:
            self._push(exc)
            raise

    async def _load_durations(self) -> None:
        """A resumed batch polls on what the last run learned of how long its tasks take."""
        model = self._client.durations
        if self._journal is None or model is None:
            return
        saved = await self._journal.durations()
        if saved is not None:
            try:
                model.load(saved)
            except (ValueError, TypeError) as exc:  # a damaged value only costs the warm start
                log.warning("batch: journalled durations ignored: %s", exc)

    def _remember_durations(self) -> None:
        """Journal the learned durations every ten ends (one small write, off the loop)."""
        self._finals += 1
        model = self._client.durations
        if self._journal is not None and model is not None and self._finals % 10 == 0:
            self._write(self._journal.record_durations(model.to_dict()))

    def _remember_limit(self) -> None:
        """Journal the limit the gate learned from a 1303, for a resumed run to start from."""
        learned = self.gate.learned
        if self._journal is not None and learned is not None and learned != self._recorded_limit:
            self._recorded_limit = learned
            self._write(self._journal.record_slot_limit(learned))

    def _on_change(self, change: StatusChange) -> None:
        key = self._keys[change.task_id]
        request = self._by_key[key]
        self._status[change.task_id] = change.current
        if self._journal is not None:
            self._write(
                self._journal.record_status(key, change.current.value, task_to_json(change.task))
            )
        if not change.is_final:
            return
        # The slot is freed by the gate itself, which sees the end on the scheduler.
        outcome: OutcomeKind
        if change.timed_out:
            outcome = "timed_out"
        elif change.error is not None or change.current is TaskStatus.FAILED:
            outcome = "failed"
        else:
            outcome = "succeed"
        error = change.error if isinstance(change.error, KlingError) else None
        detail: dict[str, Any] = {"task_id": change.task_id}
        video = change.task.video
        if video is not None:
            detail["video_id"] = video.id
            if request.parent_video_id is not None:
                detail["parent_video_id"] = request.parent_video_id
        if change.task.task_status_msg:
            detail["message"] = change.task.task_status_msg
        ended = Outcome(key, outcome, request, task=change.task, error=error)
        if outcome == "timed_out":  # this run stopped waiting: not an outcome of the request
            self._emit(ended)
        else:
            self._conclude(ended, detail)
