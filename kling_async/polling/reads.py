"""Reading tasks: get by id, find by ``external_task_id``, list pages; the scheduler's poll;
and the account's resource packs (``GET /account/costs``).

Reads retry transient failures with backoff (the retry policy decides which); the scheduler's
poll does not, because the scheduler reschedules a failed poll itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..account import ResourcePacks
from ..errors import InvalidRequestError, NotFoundError, RequestValidationError
from ..kinds import Kind, kind_named
from ..models import Task
from ..retry import Retrier
from ..serde import structure_resource_packs, structure_task, structure_tasks
from ..transport import Timeouts, Transport, quote_id

__all__ = ["COSTS_SPACING", "DEFAULT_COSTS_WINDOW", "TaskReader"]

COSTS_SPACING = 1.0  # seconds between /account/costs calls: the docs ask for QPS <= 1
DEFAULT_COSTS_WINDOW = 400 * 86_400  # seconds back from now (a 30-day window can miss packs)


class TaskReader:
    """The read half of the API, over one :class:`Transport` and one read :class:`Retrier`."""

    __slots__ = ("_costs_lock", "_last_costs", "_read", "_transport")

    def __init__(self, transport: Transport, retrier: Retrier) -> None:
        self._transport = transport
        self._read = retrier
        self._costs_lock = asyncio.Lock()
        self._last_costs: float | None = None  # clock.monotonic() of the last costs call

    async def get_task(
        self,
        task: Task | str,
        *,
        kind: str = "video-extend",
        timeouts: Timeouts | None = None,
    ) -> Task:
        """The task as it is now. ``task`` is a :class:`Task` (its kind is used) or an id.

        The id may also be the ``external_task_id`` given at creation.
        """
        if isinstance(task, Task):
            kind, task_id = task.kind, task.task_id
        else:
            task_id = task
            if not isinstance(task_id, str) or not task_id.strip():
                raise RequestValidationError("task_id", "must be a non-empty string")
        spec = kind_named(kind)
        path = f"{spec.path}/{quote_id(task_id)}"
        envelope = await self._read(
            lambda: self._transport.request("GET", path, timeouts=timeouts),
            f"GET {spec.path}/{{id}}",
        )
        return structure_task(envelope.data, spec.name, request_id=envelope.request_id)

    async def find_task(self, external_task_id: str, *, kind: str = "video-extend") -> Task | None:
        """The task created with ``external_task_id``, or ``None`` if there is none."""
        try:
            return await self.get_task(external_task_id, kind=kind)
        except NotFoundError:
            return None
        except InvalidRequestError as exc:
            if exc.code == 1201 or exc.http_status == 404:
                return None
            raise

    async def list_tasks(
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
        spec = kind_named(kind)
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise RequestValidationError("page_size", "must be an integer")
        if not 1 <= page_size <= 500:
            raise RequestValidationError("page_size", f"must be in [1, 500], got {page_size}")
        last = 1000 if max_pages is None else min(1000, max_pages)
        for page_num in range(1, last + 1):
            params = {"pageNum": page_num, "pageSize": page_size}
            envelope = await self._read(
                lambda params=params: self._transport.request(  # type: ignore[misc]
                    "GET", spec.path, params=params, timeouts=timeouts
                ),
                f"GET {spec.path}",
            )
            page = structure_tasks(envelope.data, spec.name, request_id=envelope.request_id)
            if page:
                yield page
            if len(page) < page_size:
                return

    async def poll(self, kind: Kind, task_id: str) -> Task:
        """One GET for the scheduler, which does its own rescheduling instead of retrying."""
        envelope = await self._transport.request("GET", f"{kind.path}/{quote_id(task_id)}")
        return structure_task(envelope.data, kind.name, request_id=envelope.request_id)

    async def resource_packs(
        self,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        resource_pack_name: str | None = None,
        timeouts: Timeouts | None = None,
    ) -> ResourcePacks:
        """The account's resource packs (``GET /account/costs``: free, QPS <= 1).

        ``start_time``/``end_time`` are Unix milliseconds (default: the last 400 days to now;
        which packs a window selects is undocumented, and a 30-day one was seen to miss packs
        bought earlier); ``resource_pack_name`` picks one pack by its exact name. Calls from
        this client are spaced :data:`COSTS_SPACING` seconds apart on its clock.
        """
        clock = self._transport.clock
        end = round(clock.time() * 1000) if end_time is None else end_time
        start = end - DEFAULT_COSTS_WINDOW * 1000 if start_time is None else start_time
        for name, value in (("start_time", start), ("end_time", end)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RequestValidationError(name, "must be an int of Unix milliseconds >= 0")
        if start > end:
            raise RequestValidationError("start_time", "must not be after end_time")
        params: dict[str, str | int] = {"start_time": start, "end_time": end}
        if resource_pack_name is not None:
            params["resource_pack_name"] = resource_pack_name
        async with self._costs_lock:
            if self._last_costs is not None:
                wait = self._last_costs + COSTS_SPACING - clock.monotonic()
                if wait > 0:
                    await clock.sleep(wait)
            try:
                envelope = await self._read(
                    lambda: self._transport.request(
                        "GET", "/account/costs", params=params, timeouts=timeouts
                    ),
                    "GET /account/costs",
                )
            finally:
                self._last_costs = clock.monotonic()
        return structure_resource_packs(envelope.data, request_id=envelope.request_id)
