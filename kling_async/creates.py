"""The create path — the money path: prepare a request, send it once, recover a lost answer.

A create that may have reached the server is never sent again blindly. The retry policy
(:mod:`kling_async.retry`) re-sends only what provably did not happen; an answer lost after
sending is looked up (:class:`~kling_async.claims.LostTaskFinder`) — by ``external_task_id``
on the official API, by a scan of the task list on a relay. Found: the task is returned.
Proven absent (the official API's "not found" by ``external_task_id``): it never happened, so
it is sent again under the same id within the retry budget — where Kling refuses a duplicate id
(1201 "already exists", nothing charged) a send that did happen after all comes back as that
refusal, and the task it names is returned. Anything else (a look-up that failed, a relay
scan that cannot tell): :class:`AmbiguousSubmitError`, its slot kept only as long as a task of
its profile runs (:meth:`Creator.hold_for`).

A caller's own ``external_task_id`` is an idempotency key: looked up before the POST, creates
of one key taking turns, so the same request sent twice makes one task under either reading of
duplicate ids; a different request under a used key is :class:`ExternalIdConflictError`.
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

from .claims import Lookup, LostTaskFinder, TurnExpired, Turns
from .clock import Clock
from .errors import (
    AmbiguousSubmitError,
    APIError,
    ExternalIdConflictError,
    KlingError,
    ResponseFormatError,
    ServerError,
    SlotTimeoutError,
    TransportError,
)
from .kinds import kind_named
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

_KNOWN_IDS = 100_000  # generated external_task_ids remembered


def _duplicate_id(error: APIError) -> bool:
    """1201 "External_task_id ... already exists" (seen live: no task made, nothing charged)."""
    return error.code == 1201 and "already exist" in error.message.lower()


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
        self._finder = LostTaskFinder(reader, flavour=flavour, clock=clock)
        self._turns = Turns()
        self._keys = Turns()  # creates of one caller-given external_task_id, one at a time
        # external_task_ids prepare() generated: unique by construction, never looked up first.
        self._generated: collections.OrderedDict[str, None] = collections.OrderedDict()
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
            changes["external_task_id"] = generated = f"ka-{uuid.uuid4().hex}"
            self._generated[generated] = None
            if len(self._generated) > _KNOWN_IDS:
                self._generated.popitem(last=False)
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
        ref_: Hashable = next(self._refs) if ref is None else ref
        kind = kind_named(request.kind)
        key = getattr(request, "external_task_id", None)
        if key is None or key in self._generated:
            return await self._gated(request, timeouts, retry_throttled, slot, slot_timeout, ref_)
        # The caller's own external_task_id is an idempotency key: a create of it that already
        # happened (an earlier try of a retried web request, another replica) is found first,
        # so a server that accepts duplicate ids is never sent a second one. Creates of one key
        # take turns here, the wait counted in the slot time-out.
        since = self.clock.monotonic()
        wait = self.gate.timeout if slot_timeout is None else slot_timeout
        expire = None if wait is None or slot is not None else self.clock.sleep(wait)
        try:
            async with self._keys(key, expire=expire):
                existing = await self._reader.find_task(key, kind=kind.name)
                if existing is not None:
                    made_here = self.knows(existing.task_id)  # then a slot holds it already
                    task = self._adopt(request, existing)
                    if slot is not None:
                        slot.created(task)  # a batch's slot: held until that task ends
                    elif not made_here and not task.is_terminal:
                        self.gate.hold(task)  # made elsewhere (another process): it holds one
                    return task
                left = None if wait is None else wait - (self.clock.monotonic() - since)
                if left is not None and left <= 0:
                    raise TurnExpired
                return await self._gated(request, timeouts, retry_throttled, slot, left, ref_)
        except TurnExpired:
            gate = self.gate
            raise SlotTimeoutError(wait or 0.0, in_use=gate.in_use, limit=gate.allowed) from None

    async def _gated(
        self,
        request: CreateRequest,
        timeouts: Timeouts | None,
        retry_throttled: bool,
        slot: Slot | None,
        slot_timeout: float | None,
        ref: Hashable,
    ) -> Task:
        kind = kind_named(request.kind)
        return await self.gate.create(
            lambda: self._send(request, timeouts, retry_throttled, ref),
            weight=slot_weight(kind.name, getattr(request, "n", None)),
            slot=slot,
            timeout=slot_timeout,
            requeue=retry_throttled,
            hold_unsettled=lambda: self.hold_for(request),  # asked only if it is lost
        )

    def hold_for(self, request: CreateRequest) -> float:
        """Seconds to keep the slot of a create of ``request`` whose answer was lost: as long
        as a task of its profile can run (:meth:`DurationModel.longest`: learned, the kind's
        prior only before anything of it ended). By then a task it made, if any, has ended."""
        kind = kind_named(request.kind)
        if self.durations is None:
            return 2 * kind.expected_seconds
        profile = profile_key(kind.name, unstructure_request(request))
        return self.durations.longest(profile, kind.expected_seconds)

    def _adopt(self, request: CreateRequest, task: Task) -> Task:
        """``task`` already carries the ``external_task_id`` of ``request``: it is this
        request's task if it is of the same source, else :class:`ExternalIdConflictError`."""
        key = str(task.task_info.external_task_id or getattr(request, "external_task_id", ""))
        parent = request.parent_video_id
        shown = task.task_info.parent_video.id if task.task_info.parent_video else None
        if parent is not None and shown is not None and shown != parent:
            raise ExternalIdConflictError(
                f"external_task_id {key!r} already names task {task.task_id} of video"
                f" {shown!r}, not {parent!r}: nothing was created",
                external_task_id=key,
                task=task,
            )
        log.info("%s: external_task_id %r is task %s already", request.kind, key, task.task_id)
        self.remember(task.task_id)
        return task

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
        operation = f"create {kind.name}"
        sent_external = getattr(request, "external_task_id", None)
        started = self.clock.monotonic()
        for attempt in itertools.count(1):
            sent_at = self.clock.time()
            try:
                envelope = await retrier(
                    lambda: self._transport.request(
                        "POST", kind.path, body=body, timeouts=timeouts or self.timeouts
                    ),
                    operation,
                )
                task = structure_task(envelope.data, kind.name, request_id=envelope.request_id)
                break
            except (TransportError, ServerError, ResponseFormatError, APIError) as lost:
                if isinstance(lost, TransportError) and not lost.request_sent:
                    raise  # provably never sent: nothing to look for
                if isinstance(lost, APIError) and _refusal(lost):
                    if sent_external is None or not _duplicate_id(lost):
                        raise  # nothing was created
                    # Refused as a duplicate: an earlier send of ours (its answer lost, the
                    # look-up too early) or another request made it. Nothing new was created.
                    try:
                        existing = await self._reader.find_task(sent_external, kind=kind.name)
                    except KlingError as failed:  # it exists and may be this create's task
                        found = Lookup(failure=failed)
                        raise self._ambiguous(request, sent_at, found, lost, ref) from lost
                    if existing is None:
                        raise ExternalIdConflictError(
                            f"external_task_id {sent_external!r} already exists on the account,"
                            f" for a task that is not a {kind.name} task: nothing was created",
                            external_task_id=sent_external,
                            task=None,
                        ) from lost
                    task = self._adopt(request, existing)  # its slot: the one this create holds
                    break
                # Anything else, a 4xx page without a business code included, may have made it.
                log.warning(
                    "%s: answer lost (%s); looking the task up", operation, type(lost).__name__
                )
                # Kling's own 5000/5001 envelope is a finished answer: one look-up settles it.
                # A connection lost or timed out, a gateway's page, a 5002 (its own time-out):
                # the server may still be making it, so the look-up waits lookup_delays too.
                final = isinstance(lost, ServerError) and lost.code in (5000, 5001)
                found = await self.find_lost(request, sent_at, ref=ref, final=final)
                if found.task is not None:
                    task = found.task
                    break
                if not found.absent:
                    raise self._ambiguous(request, sent_at, found, lost, ref) from lost
                # Proven absent (an authoritative "not found"): it never happened, so it is
                # sent again, under the same external_task_id, within the retry budget. Where
                # Kling refuses duplicate ids, a send that did happen after all comes back as
                # the duplicate refusal above instead of a second task.
                log.warning("%s: not created (looked up); sending it again", operation)
                if not await retrier.again(operation, attempt, started, lost):
                    raise  # spent: nothing was created (the slot goes back)
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
        self._finder.doubt(request.parent_video_id, ref)

    def remember(self, task_id: str) -> None:
        """Note ``task_id`` as created (or claimed) by us, so no list scan takes it for another
        lost create."""
        self._finder.remember(task_id)

    def knows(self, task_id: str) -> bool:
        """Whether ``task_id`` was created or claimed by us (see :meth:`remember`)."""
        return self._finder.knows(task_id)

    async def find_lost(
        self,
        request: CreateRequest,
        sent_at: float,
        *,
        delays: tuple[float, ...] | None = None,
        ref: Hashable | None = None,
        final: bool = False,
    ) -> Lookup:
        """Look for the task a create with a lost answer may have made
        (:meth:`LostTaskFinder.find`; ``final``: the server finished with the request, so
        its first "not found" settles it). On a relay, call it holding :meth:`turn` for the
        request; ``ref`` is the create's (see :meth:`send`)."""
        delays = self.lookup_delays if delays is None else delays
        return await self._finder.find(
            request, sent_at, delays, ref, wait=self.policy.wait, final=final
        )

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
