"""Reading tasks: get by id, find by ``external_task_id``, list pages; and the scheduler's poll.

Reads retry transient failures with backoff (the retry policy decides which); the scheduler's
poll does not, because the scheduler reschedules a failed poll itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .errors import InvalidRequestError, NotFoundError, RequestValidationError
from .kinds import KINDS, Kind, kind_named
from .models import Task
from .retry import Retrier
from .serde import structure_task, structure_tasks
from .transport import Timeouts, Transport, quote_id

__all__ = ["TaskReader"]


class TaskReader:
    """The read half of the API, over one :class:`Transport` and one read :class:`Retrier`."""

    __slots__ = ("_read", "_transport")

    def __init__(self, transport: Transport, retrier: Retrier) -> None:
        self._transport = transport
        self._read = retrier

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
        spec = KINDS.get(kind) or kind_named(kind)  # the look-up alone, on every poll
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
