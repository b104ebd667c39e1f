"""The create path — the money path: prepare a request, send it once, recover a lost answer.

A create that may have reached the server is never sent again blindly. The retry policy
(:mod:`kling_async.retry`) re-sends only what provably did not happen; an answer lost after
sending is looked up — by ``external_task_id`` on the official API, by a scan of the task list
on a relay — and raises :class:`AmbiguousSubmitError` when the task cannot be found.
"""

from __future__ import annotations

import collections
import logging
import uuid
from typing import Any, Literal

import attrs

from .clock import Clock
from .errors import (
    AmbiguousSubmitError,
    InvalidRequestError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from .gate import SlotGate
from .kinds import Kind, kind_named
from .models import Task
from .reads import TaskReader
from .requests import CreateRequest, VideoExtendRequest
from .retry import Retrier, RetryPolicy, retryable_create_gated, retryable_create_unthrottled
from .serde import structure_task, unstructure_request
from .slots import Slot, slot_weight
from .transport import Timeouts, Transport

__all__ = ["Creator", "Flavour"]

Flavour = Literal["official", "relay"]
log = logging.getLogger("kling_async")

# How far back (seconds, server clock) a lost create is searched for in the task list when the
# endpoint gives us no external_task_id to look it up by. Wide enough for modest clock skew;
# tasks this client knows it created are never taken for the lost one.
_SCAN_SLACK = 120.0
_SCAN_PAGES = 5
_KNOWN_IDS = 100_000


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
    ) -> None:
        self._transport = transport
        self.gate = gate
        self._reader = reader
        self.flavour: Flavour = flavour
        self.policy = policy
        self.clock = clock
        self.timeouts = timeouts
        self.lookup_delays = lookup_delays
        self._retry = Retrier(policy, clock, retryable_create_gated)
        self._retry_unthrottled = Retrier(policy, clock, retryable_create_unthrottled)
        # Ids of tasks this client created: a list scan for a lost create must not mistake one
        # of them for the lost task.
        self._created: collections.OrderedDict[str, None] = collections.OrderedDict()

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

        The POST waits for a slot of the client's :class:`SlotGate` (or uses ``slot``, taken
        by the caller), held until the task ends; a 1303 re-queues it there.
        """
        request = self.prepare(request)
        kind = kind_named(request.kind)
        return await self.gate.create(
            lambda: self._send(request, timeouts, retry_throttled),
            weight=slot_weight(kind.name, getattr(request, "n", None)),
            slot=slot,
            timeout=slot_timeout,
            requeue=retry_throttled,
            hold_unsettled=2 * kind.expected_seconds,
        )

    async def _send(
        self, request: CreateRequest, timeouts: Timeouts | None, retry_throttled: bool
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
        except (TransportError, ServerError, ResponseFormatError) as lost:
            if isinstance(lost, TransportError) and not lost.request_sent:
                raise  # provably never sent: nothing to look for
            log.warning("%s: answer lost (%s); looking the task up", operation, type(lost).__name__)
            found = await self.find_lost(request, sent_at)
            if found is None:
                raise AmbiguousSubmitError(
                    "the create was sent but its answer was lost, and no task was found for it",
                    kind=kind.name,
                    video_id=request.parent_video_id,
                    external_task_id=getattr(request, "external_task_id", None),
                    parent_task_id=getattr(request, "parent_task_id", None),
                    sent_at=sent_at,
                    cause=lost,
                    request=request,
                ) from lost
            task = found
        sent_external = getattr(request, "external_task_id", None)
        if task.task_info.external_task_id is None and sent_external is not None:
            # Older API versions do not echo it; we know what we sent.
            task = attrs.evolve(
                task, task_info=attrs.evolve(task.task_info, external_task_id=sent_external)
            )
        self.remember(task.task_id)
        return task

    def remember(self, task_id: str) -> None:
        """Note ``task_id`` as created by us, so no list scan takes it for a lost create."""
        self._created[task_id] = None
        if len(self._created) > _KNOWN_IDS:
            self._created.popitem(last=False)

    async def find_submitted(self, error: AmbiguousSubmitError) -> Task | None:
        """Look again for the task of an :class:`AmbiguousSubmitError`; ``None`` if not found."""
        request = error.request
        if request is None:
            request = VideoExtendRequest(
                video_id=error.video_id or "?",
                parent_task_id=error.parent_task_id,
                external_task_id=error.external_task_id,
            )
        task = await self.find_lost(request, error.sent_at, delays=(0.0,))
        if task is not None:
            self.remember(task.task_id)
            self.gate.settle((error.external_task_id, error.sent_at), task)
        return task

    async def find_lost(
        self,
        request: CreateRequest,
        sent_at: float,
        *,
        delays: tuple[float, ...] | None = None,
    ) -> Task | None:
        """Find the task a create with a lost answer may have made, or ``None``.

        By ``external_task_id`` where one was sent; else, for kinds that start from a video,
        by scanning the list for the one unknown task of that video created since the send;
        else there is nothing to look by.
        """
        kind = kind_named(request.kind)
        external = getattr(request, "external_task_id", None)
        parent = request.parent_video_id
        if external is None and parent is None:
            return None
        for delay in self.lookup_delays if delays is None else delays:
            if delay and self.policy.wait:
                await self.clock.sleep(delay)
            if external is not None:
                task = await self._reader.find_task(external, kind=kind.name)
            else:
                assert parent is not None
                task = await self._scan_for(kind, parent, sent_at)
            if task is not None:
                log.info("%s: found task %s after a lost answer", kind.name, task.task_id)
                return task
        return None

    async def _scan_for(self, kind: Kind, video_id: str, sent_at: float) -> Task | None:
        """The one task for ``video_id`` created since ``sent_at`` that we do not know yet."""
        since_ms = (sent_at - _SCAN_SLACK) * 1000
        matches: list[Task] = []
        pages = 0
        try:
            async for page in self._reader.list_tasks(kind.name, page_size=100):
                pages += 1
                for task in page:
                    parent = task.task_info.parent_video
                    if (
                        parent is not None
                        and parent.id == video_id
                        and task.created_at >= since_ms
                        and task.task_id not in self._created
                    ):
                        matches.append(task)
                if pages >= _SCAN_PAGES or min(t.created_at for t in page) < since_ms:
                    break
        except InvalidRequestError:
            return None  # a relay without list queries: nothing to scan
        if len(matches) == 1:
            return matches[0]
        if matches:
            log.warning(
                "%s: %d unknown tasks for video %s since the lost create; not guessing",
                kind.name,
                len(matches),
                video_id,
            )
        return None
