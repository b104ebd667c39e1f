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

One module, though past 400 lines: the producer (creates), the follower (the watch) and the
journal writes share the batch's bookkeeping of which request owns which task, and that
bookkeeping is what makes "every task the server created is reachable" true.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from .batch_callbacks import CallbackClaims, ListeningReceiver
from .batch_requests import RequestLike, as_request, each, request_key
from .batch_resume import journalled_task, look_again, mark_known, may_exist
from .batch_shared import (
    JournalArg,
    check_journal,
    intent_of,
    open_journal,
    poll_interval,
    register,
    request_of,
)
from .creates import Creator
from .errors import (
    AmbiguousSubmitError,
    APIError,
    ConcurrencyLimitError,
    DatabaseUnavailableError,
    InsufficientBalanceError,
    KlingError,
    RateLimitError,
    TransportError,
)
from .journal import ClaimLostError, Intent, Journal, JournalEntry, SharedJournal
from .kinds import kind_named
from .models import StatusChange, Task, TaskStatus
from .outcomes import BatchReport, Outcome, OutcomeKind, Progress
from .preflight import pending_requests
from .requests import CreateRequest
from .serde import (
    request_from_wire,
    task_to_json,
    unstructure_request,
)
from .slots import Slot, slot_weight
from .watch import TaskWatch

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


class Batch:
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

    def _emit(self, outcome: Outcome) -> None:
        self._handling.discard(outcome.key)
        self._ended.set()
        self._outcomes.append(outcome)
        self._done[outcome.outcome] += 1
        if outcome.task is not None:
            self._status.pop(outcome.task.task_id, None)
        self._push(outcome)

    def _push(self, item: Any) -> None:
        self._outbox.append(item)
        if self._outbox_waiter is not None and not self._outbox_waiter.done():
            self._outbox_waiter.set_result(None)

    def _write(self, coro: Any) -> None:
        """A journal write that need not hold anything up (statuses, outcomes): in the
        background, awaited before the batch ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Future[Any]) -> None:
        # Its error is taken here, when it happens: nobody awaits a background write.
        self._background.discard(task)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, DatabaseUnavailableError):
            self._halt(error)
        elif error is not None:
            log.warning("batch: a journal write failed: %s", error)

    def _halt(self, error: DatabaseUnavailableError) -> None:
        """The journal's database stayed away past its outage bound: create nothing more and
        raise ``error`` to the caller after the outcomes already known (its ``finally`` then
        cancels the rest). What was sent is journalled: a run again resumes."""
        if self._halted is None:
            self._halted = error
            log.warning("batch: stopping: %s", error)
            self._stopped.set()
            self._push(error)

    def _job_done(self, job: asyncio.Future[None]) -> None:
        # A submit that failed for want of its database stops the batch at once, rather than
        # when the producer next looks (it may be waiting for a slot that never frees).
        error = None if job.cancelled() else job.exception()
        if isinstance(error, DatabaseUnavailableError):
            self._halt(error)

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

    async def _start(
        self,
        key: str,
        request: CreateRequest,
        entry: JournalEntry | None,
        watch: Any,
        submits: set[asyncio.Task[None]],
    ) -> None:
        """Count the request in, then report it, follow its task, or submit it as slots allow."""
        self._total += 1
        self._handling.add(key)
        if entry is not None and self._resume_without_sending(key, request, entry, watch):
            return
        slot = await self._slot(slot_weight(request.kind, getattr(request, "n", None)))
        if slot is None:
            if self._halted is None:  # halted, it is not "not sent": it is for the run again
                self._emit(Outcome(key, "not_sent", request, error=self._stop_reason))
            return
        job = asyncio.ensure_future(self._submit(key, request, entry, watch, slot))
        submits.add(job)
        job.add_done_callback(submits.discard)
        job.add_done_callback(self._job_done)

    async def _take_over(
        self, journal: SharedJournal, watch: Any, submits: set[asyncio.Task[None]]
    ) -> None:
        """A shared batch's worker, its input done: take over what dead workers left, for as
        long as it has tasks of its own or a live worker holds unfinished requests (one of
        them may die yet). See :mod:`kling_async.batch_shared`."""
        while self._stop_reason is None:
            self._ended.clear()
            # Asked first: if nobody held anything then, all that was unfinished was free, and
            # the claim below sees it (a worker leaving between the two cannot slip through).
            busy = await journal.held_elsewhere()
            orphans = await journal.claim_orphans(1)
            for entry in orphans:
                if entry.key in self._handling:  # still ours: its claim came back to us
                    continue
                log.info("batch: taking over request %s", entry.key)
                request = request_of(entry, self._by_key)
                await self._start(entry.key, request, entry, watch, submits)
            if orphans:
                continue
            if not submits and not self._status and not busy:
                return
            wakes = [asyncio.ensure_future(e.wait()) for e in (self._stopped, self._ended)]
            done = asyncio.FIRST_COMPLETED
            await asyncio.wait(wakes, timeout=poll_interval(journal), return_when=done)
            for wake in wakes:
                wake.cancel()

    def _resume_without_sending(
        self, key: str, request: CreateRequest, entry: JournalEntry, watch: Any
    ) -> bool:
        """Handle a journalled request that needs no POST now; False if it must be submitted."""
        task = journalled_task(entry, request.kind)
        if entry.state == "final" and entry.outcome in ("succeed", "failed", "rejected"):
            if entry.task_json is None:
                task = None  # a refusal, or statuses never journalled: only the outcome is known
            self._emit(Outcome(key, entry.outcome, request, task=task, from_journal=True))  # type: ignore[arg-type]
            return True
        if task is not None:
            self.gate.hold(task)  # it holds an account slot until it ends
            self._track(key, task, watch)
            return True
        return False

    def _track(self, key: str, task: Task, watch: Any) -> None:
        if self._claims is not None:
            self._claims.done(key)
        self._keys[task.task_id] = key
        self._status[task.task_id] = task.task_status  # in `running` from now on
        if not watch.closed:  # the caller left: the task stays in `running` for them
            watch.add(task)

    async def _slot(self, weight: int, *, front: bool = False) -> Slot | None:
        """``weight`` slots of the client's gate (one per image an image kind makes, as for a
        single create), or ``None`` once this batch stopped creating."""
        if self._stop_reason is not None:
            return None
        acquiring = asyncio.ensure_future(self.gate.acquire(weight, front=front))
        stopped = asyncio.ensure_future(self._stopped.wait())
        taken = False
        try:
            await asyncio.wait({acquiring, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not acquiring.done() or self._stop_reason is not None:
                return None
            slot = acquiring.result()
            taken = True
            return slot
        finally:
            stopped.cancel()
            if not taken:  # stopped, failed or cancelled: a slot granted meanwhile goes back
                acquiring.cancel()
                got = (await asyncio.gather(acquiring, return_exceptions=True))[0]
                if isinstance(got, Slot):
                    got.release()

    async def _submit(
        self,
        key: str,
        request: CreateRequest,
        entry: JournalEntry | None,
        watch: Any,
        slot: Slot,
    ) -> None:
        client, journal = self._client, self._journal
        if entry is not None:
            prepared = request_from_wire(entry.request["kind"], entry.request["body"])
            if self._claims is not None:
                self._claims.know(key, prepared)
        else:
            prepared = client.prepare(request)
            if self._claims is not None:
                prepared = self._claims.tag(key, prepared)
        async with self._turn(prepared, slot):
            if entry is None:
                if journal is not None:
                    body = {"kind": prepared.kind, "body": unstructure_request(prepared)}
                    try:
                        await journal.record_intents([Intent(key, body)])
                    except BaseException:
                        slot.release()  # nothing was sent: the slot goes back
                        raise
            elif may_exist(entry):
                found = await look_again(client, entry, resend=self._resend_ambiguous)
                if isinstance(found, Task):
                    log.info("batch: request %s was created before (task %s)", key, found.task_id)
                    slot.created(found)
                    await self._created(key, found, watch)
                    return
                if found is not None:  # its task may exist and run: its slot stays held a while
                    hold = 2 * kind_named(prepared.kind).expected_seconds
                    self.gate.unsettled((found.external_task_id, found.sent_at), slot, hold)
                    self._sending[key] = prepared  # unsettled while a callback may settle it
                    await self._lost(key, request, found, watch)
                    return
            refused = await self._send(key, request, prepared, watch, slot)
        while refused is not None:
            # Refused (1302/1303), nothing created; the gate took the slot back (and learned
            # from a 1303). Wait again at the head of the line — outside the parent's turn, so
            # the creates waiting for it (each holding a slot) go on and give theirs back too.
            if isinstance(refused, RateLimitError):
                self.gate.throttled(client.policy.delay(1, refused))
            next_slot = await self._slot(slot.weight, front=True)
            if next_slot is None:
                if self._halted is None:
                    self._not_sent(key, request, self._stop_reason)
                return
            slot = next_slot
            async with self._turn(prepared, slot):
                refused = await self._send(key, request, prepared, watch, slot)

    @contextlib.asynccontextmanager
    async def _turn(self, prepared: CreateRequest, slot: Slot) -> AsyncIterator[None]:
        """The parent video's turn (:meth:`Creator.turn`) and, in a shared batch on a relay,
        the batch's turn of it across its workers (the same rule, held in the database)."""
        journal = self._journal
        parent = prepared.parent_video_id if self._client.flavour == "relay" else None
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._client.turn(prepared))
                if isinstance(journal, SharedJournal) and parent is not None:
                    await stack.enter_async_context(journal.turn(parent))
            except BaseException:
                slot.release()  # cancelled or failed before anything was sent: it goes back
                raise
            yield

    async def _send(
        self, key: str, request: CreateRequest, prepared: CreateRequest, watch: Any, slot: Slot
    ) -> APIError | None:
        """One POST of ``prepared`` and its outcome; the refusal, if it was a 1302/1303."""
        client, journal = self._client, self._journal
        if journal is not None:
            try:
                await journal.record_sent(key, client.clock.time())
            except ClaimLostError as exc:  # another worker took it over: it is theirs now
                log.warning("batch: %s", exc)
                slot.release()
                self._total -= 1
                self._handling.discard(key)
                return None
            except BaseException:  # the database gone past its bound, say: nothing was sent
                slot.release()
                raise
        self._sending[key] = prepared
        try:
            task = await client.send(prepared, retry_throttled=False, slot=slot, ref=key)
        except (ConcurrencyLimitError, RateLimitError) as exc:
            del self._sending[key]
            return exc
        except InsufficientBalanceError as exc:
            del self._sending[key]
            self._stop_reason = exc
            self._stopped.set()
            log.warning("batch: balance exhausted; no more creates (%s)", exc)
            self._not_sent(key, request, exc)
            return None
        except AmbiguousSubmitError as exc:  # its slot stays held: the task may exist
            await self._lost(key, request, exc, watch)
            return None
        except APIError as exc:  # a refusal with a business code: nothing was created
            del self._sending[key]
            outcome = Outcome(key, "rejected", request, error=exc)
            self._conclude(outcome, {"code": exc.code, "message": exc.message})
            return None
        except TransportError as exc:  # provably not sent, even after retries
            del self._sending[key]
            self._not_sent(key, request, exc)
            return None
        # Out of `unsettled` and into `running` in one step: no moment without it.
        self._track(key, task, watch)
        del self._sending[key]
        if journal is not None:
            await journal.record_created(key, task.task_id, task.created_at)
        return None

    def _not_sent(self, key: str, request: CreateRequest, error: KlingError | None) -> None:
        outcome = Outcome(key, "not_sent", request, error=error)
        self._conclude(outcome, {"error": str(error) if error else ""})

    async def _lost(
        self, key: str, request: CreateRequest, error: AmbiguousSubmitError, watch: Any
    ) -> None:
        """An ambiguous create (in ``unsettled``): settled by a callback that names its task,
        with a receiver, else reported ``ambiguous``. Either way it leaves ``unsettled`` in the
        same step as it enters ``running`` or an outcome."""
        task = None
        if self._claims is not None:
            task = await self._claims.settle(key, error.sent_at)
        del self._sending[key]
        if task is None:
            if self._claims is not None:
                self._claims.done(key)
            self._ambiguous(key, request, error)
            return
        log.info("batch: request %s settled by a callback (task %s)", key, task.task_id)
        self.gate.settle((error.external_task_id, error.sent_at), task)
        await self._created(key, task, watch)

    def _ambiguous(self, key: str, request: CreateRequest, error: AmbiguousSubmitError) -> None:
        detail: dict[str, Any] = {"error": str(error), "sent_at": error.sent_at}
        if error.video_id is not None:
            detail["video_id"] = error.video_id
        if error.parent_task_id is not None:
            detail["parent_task_id"] = error.parent_task_id
        if error.candidates:
            detail["candidates"] = list(error.candidates)
        self._conclude(Outcome(key, "ambiguous", request, error=error), detail)

    async def _created(self, key: str, task: Task, watch: Any) -> None:
        self._track(key, task, watch)
        if self._journal is not None:
            await self._journal.record_created(key, task.task_id, task.created_at)

    def _conclude(self, outcome: Outcome, detail: Mapping[str, Any]) -> None:
        """Journal ``outcome`` and yield it. In a shared batch it is yielded once its fenced
        write passed: a worker whose request was taken over meanwhile (its lease ran out in an
        outage, say) leaves it to the taker, so one worker yields each request's outcome."""
        journal = self._journal
        if isinstance(journal, SharedJournal):
            self._write(self._conclude_shared(journal, outcome, detail))
            return
        if journal is not None:
            self._write(journal.record_outcome(outcome.key, outcome.outcome, detail))
        self._emit(outcome)

    async def _conclude_shared(
        self, journal: SharedJournal, outcome: Outcome, detail: Mapping[str, Any]
    ) -> None:
        try:
            await journal.record_outcome(outcome.key, outcome.outcome, detail)
        except ClaimLostError as exc:  # the taker yields it
            log.info("batch: %s", exc)
            self._handling.discard(outcome.key)
            self._total -= 1
            if outcome.task is not None:
                self._status.pop(outcome.task.task_id, None)
            self._ended.set()
            return
        except DatabaseUnavailableError:
            raise  # the batch stops (_written): the outcome is for the run that resumes
        except Exception as exc:  # known all the same: yielded, as without a journal
            log.warning("batch: outcome of %s not journalled: %s", outcome.key, exc)
        self._emit(outcome)

    async def _follow(self, watch: Any) -> None:
        try:
            async for change in watch:
                self._on_change(change)
                if change.is_final:
                    self._remember_limit()
                    self._remember_durations()
            # A shared batch's last outcomes wait for their fenced writes (_conclude).
            while self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
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
