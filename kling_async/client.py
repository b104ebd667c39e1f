"""``KlingClient``: create, look up and list tasks; the entry point to watching and batches."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, Literal

import aiohttp

from .account import ResourcePacks
from .auth import credentials_from
from .batch.chain import Chain, extend_until
from .batch.preflight import Preflight, UnitCosts
from .batch.run import Batch, ListeningReceiver, RequestLike
from .batch.shared import JournalArg
from .clock import Clock, SystemClock
from .creates import Creator, Flavour
from .download import DownloadResult, download_videos
from .errors import (
    AmbiguousSubmitError,
    ClientClosedError,
    ConfigurationError,
    TaskFailedError,
    TaskTimeoutError,
)
from .media import MediaPolicy, warn_plain_http
from .models import Task, TaskStatus, Video
from .polling.cadence import Cadence
from .polling.reads import TaskReader
from .polling.scheduler import PollScheduler
from .polling.watch import TaskWatch
from .requests import CreateRequest
from .retry import Retrier, RetryPolicy, retryable_read
from .shortcuts import Shortcuts
from .slots.coordination import Coordinator
from .slots.sharing import gate_for
from .transport import DEFAULT_MAX_ANSWER, DOWNLOAD_TIMEOUTS, READ_TIMEOUTS, Timeouts, Transport

__all__ = ["DEFAULT_BASE_URL", "Flavour", "KlingClient"]

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
DEFAULT_MAX_VIDEO_BYTES = 1 << 30  # a 3-minute 1080p video is a few hundred MB


class KlingClient(Shortcuts):
    """An asyncio client for the Kling task API, official or relay flavour.

    ::

        async with KlingClient(access_key=..., secret_key=...) as kling:
            task = await kling.extend_video(video_id, prompt="the camera pulls back")
            done = await kling.wait(task)

    One client is safe to share between any number of coroutines; hold one for the life of an
    app. Its aiohttp session is made inside the running loop on first use and closed by
    :meth:`aclose` (an injected ``session`` is left open: it is yours).

    The flavour follows from ``base_url``: one ending in ``/kling`` is a relay, which also gets
    the parent ``task_id`` of an extend. Explicit arguments win over the ``KLING_*`` environment
    variables.

    Every create waits its turn at one :class:`~kling_async.slots.SlotGate` (``client.gate``):
    ``slots`` is the account's parallel-task limit if you know it (else it is learned from 1303
    answers), ``slot_timeout`` the default bound on a create's wait for a slot. ``coordinator``
    (a ``postgresql://`` DSN, or a :class:`~kling_async.slots.Coordinator`) shares the
    slots, the learned limit and callbacks with every process on the account ("Scaling out").
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        flavour: Flavour | None = None,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts | None = None,
        create_timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        max_connections: int = 100,
        lookup_delays: tuple[float, ...] = (0.0, 2.0, 5.0),
        cadence: Cadence | None = None,
        max_polls_per_second: float | None = 50.0,
        max_polls_in_flight: int = 20,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER,
        media_policy: MediaPolicy | None = None,
        download_timeouts: Timeouts = DOWNLOAD_TIMEOUTS,
        slots: int | None = None,
        slot_timeout: float | None = None,
        coordinator: str | Coordinator | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        credentials = credentials_from(api_key, access_key, secret_key, self.clock)
        base = (base_url or os.environ.get("KLING_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must be an http(s) URL, got {base!r}")
        warn_plain_http(base)
        if flavour is None:
            flavour = "relay" if base.endswith("/kling") else "official"
        elif flavour not in ("official", "relay"):
            raise ConfigurationError(f"flavour must be 'official' or 'relay', got {flavour!r}")
        self.flavour: Flavour = flavour
        self.retry_policy = retry or RetryPolicy()
        self.create_timeouts = create_timeouts or Timeouts(connect=10.0, read=60.0, total=90.0)
        self.lookup_delays = lookup_delays
        self.media_policy = media_policy or MediaPolicy.for_base_url(base)
        self.download_timeouts = download_timeouts
        self._transport = Transport(
            base_url=base,
            credentials=credentials,
            clock=self.clock,
            timeouts=timeouts or READ_TIMEOUTS,
            session=session,
            max_connections=max_connections,
            max_answer_bytes=max_answer_bytes,
        )
        self._reader = TaskReader(
            self._transport, Retrier(self.retry_policy, self.clock, retryable_read)
        )
        self.scheduler = PollScheduler(
            self._reader.poll,
            clock=self.clock,
            cadence=cadence or Cadence(),
            retry_delay=self.retry_policy.delay,
            max_polls_per_second=max_polls_per_second,
            max_in_flight=max_polls_in_flight,
        )
        self.gate = gate_for(self.clock, self.scheduler, credentials, base, slots=slots,
            slot_timeout=slot_timeout, backoff=self.retry_policy.delay,
            coordinator=coordinator)  # fmt: skip
        self.coordinator = self.gate.coordinator
        self._creator = Creator(
            self._transport,
            self._reader,
            flavour=flavour,
            policy=self.retry_policy,
            clock=self.clock,
            timeouts=self.create_timeouts,
            lookup_delays=lookup_delays,
            gate=self.gate,
            durations=self.scheduler.durations,
        )

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def closed(self) -> bool:
        return self._transport.closed

    def __repr__(self) -> str:
        return (
            f"KlingClient(base_url={self.base_url!r}, flavour={self.flavour!r}, "
            f"credentials={self._transport.credentials!r})"
        )

    async def __aenter__(self) -> KlingClient:
        await self.gate.start()  # with a coordinator: connected, listening, the limit known
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop all watching and close the session (unless it was injected). Idempotent."""
        await self.gate.aclose()
        await self.scheduler.aclose()
        await self.coordinator.aclose()
        await self._transport.aclose()

    # -- creates -----------------------------------------------------------------------------

    def prepare(self, request: CreateRequest) -> CreateRequest:
        """The request as it will be sent; see :meth:`Creator.prepare
        <kling_async.creates.Creator.prepare>` (official API: an ``external_task_id`` is added)."""
        return self._creator.prepare(request)

    async def create(
        self,
        request: CreateRequest,
        *,
        timeouts: Timeouts | None = None,
        retry_throttled: bool = True,
        slot_timeout: float | None = None,
    ) -> Task:
        """Create the task described by ``request`` (any kind); see :meth:`extend_video`.

        Pass a request that went through :meth:`prepare` to know its ``external_task_id``
        before the POST (a journal records it); an unprepared one is prepared here.
        ``retry_throttled=False`` raises 1302/1303 at once instead of backing off or waiting
        for a slot again (for callers that schedule creates themselves).
        """
        return await self._creator.create(
            request, timeouts=timeouts, retry_throttled=retry_throttled, slot_timeout=slot_timeout
        )

    async def find_submitted(self, error: AmbiguousSubmitError) -> Task | None:
        """Look again for the task of an :class:`AmbiguousSubmitError` (say, minutes later).

        Returns the task if it exists, ``None`` if it still cannot be found.
        """
        return await self._creator.find_submitted(error)

    # -- reads -------------------------------------------------------------------------------

    async def get_task(
        self,
        task: Task | str,
        *,
        kind: str = "video-extend",
        timeouts: Timeouts | None = None,
    ) -> Task:
        """The task as it is now. ``task`` is a :class:`Task` (its kind is used) or an id of
        ``kind``.

        The id may also be the ``external_task_id`` given at creation.
        """
        return await self._reader.get_task(task, kind=kind, timeouts=timeouts)

    async def find_task(self, external_task_id: str, *, kind: str = "video-extend") -> Task | None:
        """The task created with ``external_task_id``, or ``None`` if there is none."""
        return await self._reader.find_task(external_task_id, kind=kind)

    def list_tasks(
        self,
        kind: str = "video-extend",
        *,
        page_size: int = 30,
        max_pages: int | None = None,
        timeouts: Timeouts | None = None,
    ) -> AsyncIterator[list[Task]]:
        """Pages of tasks of one kind, in the server's order, until the server has no more.

        Pages are positional: tasks created while you iterate shift later pages.
        """
        return self._reader.list_tasks(
            kind, page_size=page_size, max_pages=max_pages, timeouts=timeouts
        )

    async def resource_packs(self, *, start_time: int | None = None, end_time: int | None = None,
                             resource_pack_name: str | None = None) -> ResourcePacks:  # fmt: skip
        """The account's resource packs (``GET /account/costs``; see
        :mod:`kling_async.polling.reads`)."""
        return await self._reader.resource_packs(start_time=start_time, end_time=end_time,
                                                 resource_pack_name=resource_pack_name)  # fmt: skip

    # -- following tasks ---------------------------------------------------------------------

    def watch(
        self,
        tasks: Iterable[Task | str] = (),
        *,
        kind: str = "video-extend",
        timeout: float | None = None,
        on_timeout: Literal["mark", "raise"] = "mark",
        open_ended: bool = False,
    ) -> TaskWatch:
        """Follow ``tasks`` (``Task`` objects, or ids of ``kind``): an async iterator of
        :class:`StatusChange`, one for the first observation of each task and one per change.

        It ends when every task is final. See :class:`TaskWatch` for time-outs, adding tasks
        while it runs and leaving early.
        """
        if self.closed:
            raise ClientClosedError("this KlingClient is closed; create a new one")
        self.coordinator.open()  # other replicas' callbacks wake this watch too
        return TaskWatch(
            self.scheduler,
            tasks,
            kind=kind,
            timeout=timeout,
            on_timeout=on_timeout,
            open_ended=open_ended,
        )

    async def wait(
        self, task: Task | str, *, kind: str = "video-extend", timeout: float | None = None
    ) -> Task:
        """Wait until ``task`` ends and return it in ``succeed``. A :class:`Task` brings its
        kind; ``kind`` is for a bare task id.

        Raises :class:`TaskFailedError` (with the task and its ``task_status_msg``) if it
        failed, :class:`TaskTimeoutError` after ``timeout`` seconds (the task keeps running on
        the server). Many concurrent ``wait()`` calls share one scheduler and poll budget.
        """
        async with self.watch([task], kind=kind, timeout=timeout, on_timeout="raise") as changes:
            async for change in changes:
                if change.error is not None:
                    raise change.error
                if change.current is TaskStatus.SUCCEED:
                    return change.task
                if change.current is TaskStatus.FAILED:
                    raise TaskFailedError(change.task)
        task_id, kind = (task.task_id, task.kind) if isinstance(task, Task) else (task, kind)
        # unreachable unless the watch was closed from outside
        raise TaskTimeoutError(task_id, kind=kind, timeout=timeout, last=None)

    # -- many at once ------------------------------------------------------------------------

    def extend_many(
        self,
        requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
        *,
        journal: JournalArg = None,
        batch: str | None = None,
        slots: int | None = None,
        timeout: float | None = None,
        resend_ambiguous: bool = False,
        callback_receiver: ListeningReceiver | None = None,
        callback_wait: float = 120.0,
        preflight: bool | UnitCosts = False,
    ) -> Batch:
        """Extend many videos; an async iterator of one :class:`~kling_async.batch.Outcome` per
        request, in the order they end. See :mod:`kling_async.batch.run`.

        ``slots`` is the account's parallel-task limit if you know it (else it is learned from
        1303 answers); ``journal`` a SQLite file that makes the batch resumable after a crash
        (or a ``postgresql://`` DSN and a ``batch`` name: :mod:`kling_async.batch.shared`);
        ``timeout`` a per-task deadline in seconds; ``resend_ambiguous=True`` re-sends journalled
        creates a fresh look-up still cannot settle (each may then be paid twice).
        ``callback_receiver``/``callback_wait``: see :mod:`kling_async.batch.callbacks`.
        ``preflight`` (``True`` or your :class:`UnitCosts`) reads every request first and raises
        :class:`PreflightBalanceError` before any create if the packs cannot cover them.

        ``requests`` are read as they are needed. One that cannot be built (a mapping with an
        unknown field, say: :class:`RequestValidationError`), or an error of the iterable
        itself, stops new creates; the tasks already created are still followed and yielded,
        then that error is raised (a list of request objects refuses bad input before sending).
        """
        if self.closed:
            raise ClientClosedError("this KlingClient is closed; create a new one")
        check = None if preflight is False else Preflight(self.resource_packs, self.clock,
            preflight if isinstance(preflight, UnitCosts) else None)  # fmt: skip
        return Batch(self._creator, self.watch, requests, journal=journal, batch=batch,
            slots=slots, timeout=timeout, resend_ambiguous=resend_ambiguous, preflight=check,
            callback_receiver=callback_receiver, callback_wait=callback_wait)  # fmt: skip

    async def extend_until(
        self,
        video: str | Video | Task,
        target_seconds: float,
        *,
        duration: float | None = None,
        parent_task_id: str | None = None,
        step_timeout: float | None = 1800.0,
        **fields: Any,
    ) -> Chain:
        """Extend ``video`` step by step until it lasts ``target_seconds`` (at most 180)."""
        return await extend_until(
            self,
            video,
            target_seconds,
            duration=duration,
            parent_task_id=parent_task_id,
            step_timeout=step_timeout,
            **fields,
        )

    async def download(
        self,
        tasks: Iterable[Task],
        dest: str | os.PathLike[str],
        *,
        concurrency: int = 4,
        watermarked: bool = False,
        max_bytes: int | None = DEFAULT_MAX_VIDEO_BYTES,
        policy: MediaPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> list[DownloadResult]:
        """Download the videos of finished ``tasks`` into ``dest``; see
        :mod:`kling_async.download`.

        A video over ``max_bytes`` (``None``: no limit) fails; ``policy`` (default: the
        client's ``media_policy``) says which URLs may be fetched; ``timeouts`` default to the
        client's ``download_timeouts`` (connect and per-read, no total).
        """
        stream = functools.partial(
            self._transport.stream,
            policy=policy or self.media_policy,
            max_bytes=max_bytes,
            timeouts=timeouts or self.download_timeouts,
        )
        return await download_videos(
            stream,
            self.clock,
            tasks,
            dest,
            concurrency=concurrency,
            watermarked=watermarked,
        )
