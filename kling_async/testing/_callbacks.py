"""Legacy callbacks (kling-api.md 6.1, 6.3): the bare task object POSTed on each status.

One scheduler serves every task: a heap of (due time, task, phase) woken through the clock's
``sleep``, so ``FakeClock.advance`` and ``ScaledClock`` both drive it. Deliveries run
concurrently across tasks but in order within a task. Failures are recorded, never raised.

Readings the docs leave open, as knobs: kling-api.md 6.1 says callbacks go "when the task
status changes" without listing transitions, so ``submitted=True`` (the default) also sends
one for ``submitted`` at create time and ``False`` starts at ``processing``; 6.3 ties signing
to the new-standard ``options.callback_url``, so ``signed=False`` sends legacy callbacks
unsigned even with a secret. Several secrets (a rotation, 6.3: "several space-separated
signatures may be present; any match passes") give one ``v1,`` signature each, in one header.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs

from kling_async.clock import Clock
from kling_async.testing._replies import encode
from kling_async.testing._tasks import SUBMITTED, Phase, TaskRecord
from kling_async.webhooks.signing import WebhookSecret, sign

__all__ = ["CallbackDispatcher", "CallbackRecord"]

Render = Callable[[TaskRecord, Phase], dict[str, Any]]

# Events due within this many clock seconds count as due: clocks built on a large Unix epoch
# cannot hit an instant exactly, and the wire's resolution is one millisecond anyway.
_EPSILON = 1e-3
_TIMEOUT = aiohttp.ClientTimeout(total=10.0)


@attrs.frozen
class CallbackRecord:
    """One delivery attempt: the answer's ``http_status``, or the ``error`` that prevented one."""

    url: str
    status: str
    payload: dict[str, Any]
    headers: dict[str, str]
    http_status: int | None = None
    error: str | None = None
    at: float = 0.0  # clock time of the attempt


class CallbackDispatcher:
    """Delivers every task's callbacks from one background task.

    The runner awaits ``clock.sleep`` directly, so a ``FakeClock.advance`` wakes it and it is
    asleep again, on the next event, before ``advance`` moves on. An event due earlier than the
    runner's wake-up replaces the runner; with nothing scheduled, no runner exists.
    """

    def __init__(
        self,
        clock: Clock,
        render: Render,
        secret: WebhookSecret | tuple[WebhookSecret, ...] | None,
        *,
        signed: bool = True,
        submitted: bool = True,
    ) -> None:
        self._clock = clock
        self._render = render
        secrets = () if secret is None else secret if isinstance(secret, tuple) else (secret,)
        self._secrets: tuple[WebhookSecret, ...] = secrets if signed else ()
        self._submitted = submitted
        self._heap: list[tuple[float, int, TaskRecord, Phase]] = []
        self._order = itertools.count()
        self._runner: asyncio.Task[None] | None = None
        self._wakes_at = float("inf")  # due time the runner sleeps until
        self._session: aiohttp.ClientSession | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # per task, so statuses arrive in order
        self.records: list[CallbackRecord] = []

    def schedule(self, task: TaskRecord) -> None:
        """Queue one callback per status of ``task`` (it must have a ``callback_url``)."""
        for phase in task.phases():
            if phase.status == SUBMITTED and not self._submitted:
                continue
            heapq.heappush(self._heap, (phase.at, next(self._order), task, phase))
        if self._session is not None:
            self._release_due()
            self._rearm()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        self._release_due()
        self._rearm()

    async def close(self) -> None:
        """Stop the scheduler, abandon pending deliveries, close the session."""
        pending = [t for t in (self._runner, *self._inflight) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._runner = None
        self._last.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def flush(self) -> None:
        """Return once every callback due by now has been delivered (or has failed)."""
        self._release_due()
        # Wait on the unfinished ones only: a finished delivery stays in ``_inflight`` until its
        # done callback runs on a later loop turn, and since Python 3.12 ``gather`` of futures
        # that are all done completes eagerly, without yielding, so looping on the set itself
        # would spin forever and starve that callback. ``asyncio.wait`` always yields.
        while pending := [task for task in self._inflight if not task.done()]:
            await asyncio.wait(pending)

    def _rearm(self) -> None:
        """Make sure a runner wakes for the earliest pending event."""
        if not self._heap:
            return
        if self._runner is not None and not self._runner.done():
            if self._wakes_at <= self._heap[0][0]:
                return
            self._runner.cancel()  # it only ever waits in clock.sleep
        self._runner = asyncio.get_running_loop().create_task(
            self._run(), name="kling-emulator-callbacks"
        )

    async def _run(self) -> None:
        while self._heap:
            self._wakes_at = self._heap[0][0]
            await self._clock.sleep(self._wakes_at - self._clock.time() - _EPSILON / 2)
            self._release_due()
        self._wakes_at = float("inf")

    def _release_due(self) -> None:
        now = self._clock.time()
        while self._heap and self._heap[0][0] <= now + _EPSILON:
            _, _, task, phase = heapq.heappop(self._heap)
            previous = self._last.get(task.task_id)
            # Never stamped before its status began: the runner wakes a hair early (_EPSILON).
            sent_at = max(now, phase.at)
            delivery = asyncio.create_task(self._deliver(previous, task, phase, sent_at))
            self._inflight.add(delivery)
            delivery.add_done_callback(self._inflight.discard)
            if phase == task.phases()[-1]:
                self._last.pop(task.task_id, None)
            else:
                self._last[task.task_id] = delivery

    async def _deliver(
        self, previous: asyncio.Task[None] | None, task: TaskRecord, phase: Phase, sent_at: float
    ) -> None:
        if previous is not None:
            await asyncio.wait((previous,))
        assert self._session is not None, "deliveries run only between start() and close()"
        assert task.callback_url is not None, "only tasks with a callback_url are scheduled"
        payload = self._render(task, phase)
        body = encode(payload)
        headers = {"Content-Type": "application/json"}
        if self._secrets:
            msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(sent_at)
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = str(stamp)
            headers["webhook-signature"] = " ".join(
                sign(secret, msg_id, stamp, body) for secret in self._secrets
            )
        record = CallbackRecord(task.callback_url, phase.status, payload, headers, at=sent_at)
        try:
            async with self._session.post(task.callback_url, data=body, headers=headers) as resp:
                await resp.read()
            self.records.append(attrs.evolve(record, http_status=resp.status))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.records.append(attrs.evolve(record, error=f"{type(exc).__name__}: {exc}"))
