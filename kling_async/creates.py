"""The create path — the money path: prepare a request, send it once, recover a lost answer.

A create that may have reached the server is never sent again blindly. The retry policy
(:mod:`kling_async.retry`) re-sends only what provably did not happen; an answer lost after
sending is looked up — by ``external_task_id`` on the official API, by a scan of the task list
on a relay — and raises :class:`AmbiguousSubmitError` when the task cannot be found.

What a look-up proves (:class:`Lookup`): on the official API, "not found" by
``external_task_id`` is authoritative (``absent``). A look-up that itself fails (a gateway's
502 for a while) proves nothing. On a relay nothing proves absence: the list route is not
documented (it may answer 404/1203), and a scan that finds zero or several candidates cannot
tell. So a relay scan claims a task only when it is the single unknown task of that parent
video since just before the send, and the client makes that the common case by construction:
at most one create per parent video has an unsettled answer at a time (:meth:`Creator.turn`),
so no sibling create of this client can be in flight when a scan runs.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import uuid
from collections.abc import Hashable
from typing import Any, Literal

import attrs

from .claims import Doubts, Lookup, Turns, unknown_children
from .clock import Clock
from .errors import (
    AmbiguousSubmitError,
    APIError,
    KlingError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from .kinds import Kind, kind_named
from .models import Task
from .polling.durations import DurationModel, profile_key
from .polling.reads import TaskReader
from .requests import CreateRequest, VideoExtendRequest
from .retry import Retrier, RetryPolicy, retryable_create_gated, retryable_create_unthrottled
from .serde import structure_task, unstructure_request
from .slots.gate import SlotGate
from .slots.slot import Slot, slot_weight
from .transport import Timeouts, Transport

__all__ = ["Creator", "Flavour", "Lookup"]

Flavour = Literal["official", "relay"]
log = logging.getLogger("kling_async")

# How far back (seconds, server clock) a lost create is searched for in the task list when the
# endpoint gives us no external_task_id to look it up by. Wide enough for modest clock skew;
# tasks this client knows it created are never taken for the lost one.
_SCAN_SLACK = 120.0
_KNOWN_IDS = 100_000


def _refusal(error: APIError) -> bool:
    """Kling's own refusal (1102, 1201, 1303... a business code), or a redirect refused before
    it was followed; not a 5xx, nor a 4xx page without a code (Kling may have been reached)."""
    if isinstance(error, ServerError):
        return False
    return error.code is not None or (error.http_status or 0) < 400


class Creator:
    """Sends creates for one client: one POST per request, lost answers looked up."""

    def __init__(
        self,
        transport: Transport,
        reader: TaskReader,
        *,
        flavour: Flavour,
        policy: RetryPolicy,
        clock: Clock,
        timeouts: Timeouts,
        lookup_delays: tuple[float, ...],
        gate: SlotGate,
        durations: DurationModel | None = None,
    ) -> None:
        self._transport = transport
        #: Told the profile of each task created, so the cadence learns per profile.
        self.durations = durations
        self.gate = gate
        self._reader = reader
        self.flavour: Flavour = flavour
        self.policy = policy
        self.clock = clock
        self.timeouts = timeouts
        self.lookup_delays = lookup_delays
        self._retry = Retrier(policy, clock, retryable_create_gated)
        self._retry_unthrottled = Retrier(policy, clock, retryable_create_unthrottled)
        # Ids of tasks this client created or claimed: a list scan for a lost create must not
        # mistake one of them for the lost task, and no task is claimed by two requests.
        self._created: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._turns = Turns()
        self._doubts = Doubts()
        self._refs = itertools.count(1)

    def prepare(self, request: CreateRequest) -> CreateRequest:
        """The request as it will be sent.

        On the official API: with a generated ``external_task_id`` where the kind takes one and
        none was given (so a lost answer can be looked up by it), and without the relay-only
        parent ``task_id``. Relays document neither field as passed through, so nothing is
        added for them; a lost answer there is found by scanning the task list.
        """
        if self.flavour == "relay":
            return request
        fields = attrs.fields_dict(type(request))
        changes: dict[str, Any] = {}
        if "parent_task_id" in fields and getattr(request, "parent_task_id", None) is not None:
            changes["parent_task_id"] = None
        if (
            "external_task_id" in fields
            and getattr(request, "external_task_id", None) is None
            and kind_named(request.kind).takes_external_task_id
        ):
            changes["external_task_id"] = f"ka-{uuid.uuid4().hex}"
        if changes:
            request = attrs.evolve(request, **changes)
        return request

    def turn(self, request: CreateRequest) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold while a create of ``request`` may have an unsettled answer.

        On a relay, creates of the same parent video take turns: the next is sent only once
        the previous one's task is known (or the create is settled as ambiguous), so a list
        scan never meets a sibling whose answer is still on its way. A batch holds the turn
        until the task id is journalled, so a resumed batch finds at most one unknown task
        per parent. Elsewhere (official API, no parent video) there is nothing to wait for.
        """
        parent = request.parent_video_id
        if self.flavour != "relay" or parent is None:
            return contextlib.nullcontext()
        return self._turns(parent)

    async def create(
        self,
        request: CreateRequest,
        *,
        timeouts: Timeouts | None = None,
        retry_throttled: bool = True,
        slot: Slot | None = None,
        slot_timeout: float | None = None,
    ) -> Task:
        """POST ``request`` (prepared here if it was not) and return the task it made.

        On a relay it first waits its parent video's turn (:meth:`turn`). The POST waits for a
        slot of the client's :class:`SlotGate` (or uses ``slot``, taken by the caller), held
        until the task ends; a 1303 re-queues it there.
        """
        request = self.prepare(request)
        async with self.turn(request):
            return await self.send(
                request,
                timeouts=timeouts,
                retry_throttled=retry_throttled,
                slot=slot,
                slot_timeout=slot_timeout,
            )

    async def send(
        self,
        request: CreateRequest,
        *,
        timeouts: Timeouts | None = None,
        retry_throttled: bool = True,
        slot: Slot | None = None,
        slot_timeout: float | None = None,
        ref: Hashable | None = None,
    ) -> Task:
        """Like :meth:`create`, for a caller that holds :meth:`turn` itself (a batch).

        ``ref`` names this create among the caller's (a batch's request key), so a later
        look-up of the same create (:meth:`find_lost`) is told apart from the others."""
        request = self.prepare(request)
        create_ref: Hashable = next(self._refs) if ref is None else ref
        kind = kind_named(request.kind)
        return await self.gate.create(
            lambda: self._send(request, timeouts, retry_throttled, create_ref),
            weight=slot_weight(kind.name, getattr(request, "n", None)),
            slot=slot,
            timeout=slot_timeout,
            requeue=retry_throttled,
            hold_unsettled=2 * kind.expected_seconds,
        )

    async def _send(
        self,
        request: CreateRequest,
        timeouts: Timeouts | None,
        retry_throttled: bool,
        ref: Hashable,
    ) -> Task:
        """POST once (re-sent only when provably nothing happened); a lost answer is looked up."""
        retrier = self._retry if retry_throttled else self._retry_unthrottled
        kind = kind_named(request.kind)
        body = unstructure_request(request)
        sent_at = self.clock.time()
        operation = f"create {kind.name}"
        try:
            envelope = await retrier(
                lambda: self._transport.request(
                    "POST", kind.path, body=body, timeouts=timeouts or self.timeouts
                ),
                operation,
            )
            task = structure_task(envelope.data, kind.name, request_id=envelope.request_id)
        except (TransportError, ServerError, ResponseFormatError, APIError) as lost:
            if isinstance(lost, TransportError) and not lost.request_sent:
                raise  # provably never sent: nothing to look for
            if isinstance(lost, APIError) and _refusal(lost):
                raise  # nothing was created
            # Anything else, a 4xx page without a business code included, may have created it.
            log.warning("%s: answer lost (%s); looking the task up", operation, type(lost).__name__)
            found = await self.find_lost(request, sent_at, ref=ref)
            if found.task is None:
                raise self._ambiguous(request, sent_at, found, lost, ref) from lost
            task = found.task
        sent_external = getattr(request, "external_task_id", None)
        if task.task_info.external_task_id is None and sent_external is not None:
            # Older API versions do not echo it; we know what we sent.
            task = attrs.evolve(
                task, task_info=attrs.evolve(task.task_info, external_task_id=sent_external)
            )
        self.remember(task.task_id)
        if self.durations is not None:
            self.durations.note(task.task_id, profile_key(kind.name, body))
        return task

    def _ambiguous(
        self,
        request: CreateRequest,
        sent_at: float,
        found: Lookup,
        cause: BaseException | None,
        ref: Hashable,
    ) -> AmbiguousSubmitError:
        if found.failure is not None:
            why = f"and looking for its task failed too ({type(found.failure).__name__})"
        elif found.candidates:
            why = f"and {len(found.candidates)} unknown tasks of that video could be it"
        else:
            why = "and no task was found for it"
        return AmbiguousSubmitError(
            f"the create was sent but its answer was lost, {why}",
            kind=request.kind,
            video_id=request.parent_video_id,
            external_task_id=getattr(request, "external_task_id", None),
            parent_task_id=getattr(request, "parent_task_id", None),
            sent_at=sent_at,
            cause=cause,
            request=request,
            candidates=found.candidates,
            lookup_error=found.failure,
            ref=ref,
        )

    def ambiguous(
        self, request: CreateRequest, sent_at: float, found: Lookup, ref: Hashable
    ) -> AmbiguousSubmitError:
        """The error for a create that a later look-up (a resumed batch's) could not settle."""
        return self._ambiguous(request, sent_at, found, found.failure, ref)

    def doubt(self, request: CreateRequest, ref: Hashable) -> None:
        """Note that the create ``ref`` of ``request`` may own a task not seen yet (a resumed
        batch says so of each journalled create it will look up): until its own look-up
        settles it, no scan of that parent video claims a single unknown task."""
        parent = request.parent_video_id
        if parent is not None:
            self._doubts.add(parent, ref)

    def remember(self, task_id: str) -> None:
        """Note ``task_id`` as created (or claimed) by us, so no list scan takes it for another
        lost create."""
        self._created[task_id] = None
        if len(self._created) > _KNOWN_IDS:
            self._created.popitem(last=False)

    def knows(self, task_id: str) -> bool:
        """Whether ``task_id`` was created or claimed by us (see :meth:`remember`)."""
        return task_id in self._created

    async def fetch(self, task_id: str, kind: str) -> Task:
        """The task ``task_id`` as Kling shows it now (a callback's claim, confirmed)."""
        return await self._reader.get_task(task_id, kind=kind)

    async def find_submitted(self, error: AmbiguousSubmitError) -> Task | None:
        """Look again for the task of an :class:`AmbiguousSubmitError`; ``None`` if not found."""
        request = error.request
        if request is None:
            request = VideoExtendRequest(
                video_id=error.video_id or "?",
                parent_task_id=error.parent_task_id,
                external_task_id=error.external_task_id,
            )
        ref = error.ref if error.ref is not None else next(self._refs)
        async with self.turn(request):
            found = await self.find_lost(request, error.sent_at, delays=(0.0,), ref=ref)
        if found.task is not None:
            self.gate.settle((error.external_task_id, error.sent_at), found.task)
        elif found.failure is not None:
            raise found.failure
        return found.task

    async def find_lost(
        self,
        request: CreateRequest,
        sent_at: float,
        *,
        delays: tuple[float, ...] | None = None,
        ref: Hashable | None = None,
    ) -> Lookup:
        """Look for the task a create with a lost answer may have made (see :class:`Lookup`).

        By ``external_task_id`` where one was sent; else (and on a relay, which may drop the
        id, also when that finds nothing), for kinds that start from a video, by scanning the
        list for the one unknown task of that video created since the send; else there is
        nothing to look by. A task found is remembered (claimed). On a relay,
        call it holding :meth:`turn` for the request; ``ref`` is the create's (see :meth:`send`).
        """
        kind = kind_named(request.kind)
        external = getattr(request, "external_task_id", None)
        parent = request.parent_video_id
        if external is None and parent is None:
            return Lookup()
        # A relay may drop the id (its documented body has none): there a scan follows too.
        scans = parent is not None and (external is None or self.flavour == "relay")
        result = Lookup()
        for delay in self.lookup_delays if delays is None else delays:
            if delay and self.policy.wait:
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
