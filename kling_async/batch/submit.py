"""What a :class:`~kling_async.batch.Batch` does with each request it reads: from its journal
entry to its task, through a slot, the parent's turn and one POST.

Each request either resumes from what the journal says (reported, followed, or looked up again
before it is ever re-sent), or waits for a slot and is sent once; its answer decides its
outcome (1302/1303: wait again at the head of the line, 1102: the batch stops creating, a lost
answer: settled by a callback or reported ``ambiguous``). The bookkeeping of which request owns
which task lives here too (:meth:`Submitter._track`, :meth:`Submitter._emit`): a request moves
from ``unsettled`` to ``running`` or to an outcome in one step, never through a moment without
either, which is what makes every task the server created reachable by the caller.

:class:`Submitter` is the half of :class:`Batch` that does this; :mod:`.run` holds the other
(the loop that reads requests, follows tasks and hands outcomes on). Both share the state
that ``Batch.__init__`` sets, declared below.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..creates import Creator
from ..errors import (
    AmbiguousSubmitError,
    APIError,
    ConcurrencyLimitError,
    DatabaseUnavailableError,
    InsufficientBalanceError,
    KlingError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from ..journal import ClaimLostError, Intent, Journal, JournalEntry, SharedJournal
from ..models import Task, TaskStatus
from ..requests import CreateRequest
from ..serde import request_from_wire, unstructure_request
from ..slots.gate import SlotGate
from ..slots.slot import Slot, slot_weight
from .callbacks import CallbackClaims
from .outcomes import Outcome
from .resume import journalled_task, look_again, may_exist
from .shared import poll_interval, request_of

__all__ = ["Submitter"]

log = logging.getLogger("kling_async")


class Submitter:
    """The create side of a :class:`~kling_async.batch.Batch` and its bookkeeping."""

    # Set by Batch.__init__.
    gate: SlotGate
    _client: Creator
    _journal: Journal | SharedJournal | None
    _claims: CallbackClaims | None
    _resend_ambiguous: bool
    _stopped: asyncio.Event
    _stop_reason: KlingError | None
    _halted: DatabaseUnavailableError | None
    _outcomes: list[Outcome]
    _outbox: collections.deque[Any]
    _outbox_waiter: asyncio.Future[None] | None
    _keys: dict[str, str]
    _by_key: dict[str, CreateRequest]
    _status: dict[str, TaskStatus]
    _done: collections.Counter[str]
    _sending: dict[str, CreateRequest]
    _background: set[asyncio.Task[Any]]
    _handling: set[str]
    _ended: asyncio.Event
    _total: int

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
        them may die yet). See :mod:`kling_async.batch.shared`."""
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
                    hold = client.hold_for(prepared)
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
        except (ServerError, ResponseFormatError, TransportError) as exc:
            # Provably not created: never sent, or looked up and not found, retries spent.
            del self._sending[key]
            self._not_sent(key, request, exc)
            return None
        except APIError as exc:  # a refusal with a business code: nothing was created
            del self._sending[key]
            outcome = Outcome(key, "rejected", request, error=exc)
            self._conclude(outcome, {"code": exc.code, "message": exc.message})
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
