"""Live displays of ``kling-async``: the redrawn region, following tasks, and whether the API
answers at all.

``Reach`` sees every failed attempt to reach the API (a single request's retries and a watch's
failed polls, both through the retry policy's ``delay``): while requests fail it is shown live
(or noted on stderr), and a watch gives up after ``GIVE_UP_AFTER`` failed polls of a task in a
row (10 to 20 s when connections are refused: the waits double from 0.5 s) with exit 4.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from rich.console import Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..client import KlingClient
from ..errors import KlingError, ResponseFormatError, ServerError, TransportError
from ..models import StatusChange, Task
from ..retry import RetryPolicy
from .output import Output, add_row, change_json, clean, id_column, status_text

__all__ = ["GIVE_UP_AFTER", "LiveView", "Reach", "follow"]

#: Failed polls of one task in a row after which a watch stops (exit 4); the attempts a single
#: request makes before it gives up (``RetryPolicy.max_attempts``).
GIVE_UP_AFTER = RetryPolicy().max_attempts or 6
#: What "the API gives no usable answer" is (exit 4).
_UNREACHABLE = (TransportError, ServerError, ResponseFormatError)


@attrs.frozen
class _ReportingPolicy(RetryPolicy):
    """The default policy, telling ``observer`` of each failure before the wait it computes."""

    observer: Callable[[int, BaseException], None] | None = None

    def delay(self, attempt: int, error: BaseException) -> float:
        if self.observer is not None:
            self.observer(attempt, error)
        return super().delay(attempt, error)


class Reach:
    """How the last requests to the API went: failures in a row and since when."""

    def __init__(self, out: Output, clock: Callable[[], float]) -> None:
        self.out = out
        self.base_url = ""
        self._clock = clock
        self.attempt = 0
        self.error: BaseException | None = None
        self.failing_since: float | None = None
        self.last_failure: float | None = None
        self.given_up: BaseException | None = None
        self.on_give_up: Callable[[], None] | None = None
        self.live = False  # a live view shows the failures; else each new one is noted

    def policy(self) -> RetryPolicy:
        return _ReportingPolicy(observer=self.failed)

    def failed(self, attempt: int, error: BaseException) -> None:
        if not isinstance(error, _UNREACHABLE):
            return  # throttling (1302, 1303) or a stale token: the API answers, it is fine
        now = self._clock()
        if self.last_failure is None or now - self.last_failure > 30.0:
            self.failing_since, self.attempt = now, 0  # a new outage, not the same one
        self.last_failure, self.error = now, error
        news = attempt > self.attempt  # of several tasks' failed polls, say each step once
        self.attempt = max(self.attempt, attempt)
        if news and not self.live:
            self.out.note(Text(self.describe(), style="yellow"))
        if attempt >= GIVE_UP_AFTER and self.given_up is None:
            self.given_up = error
            if self.on_give_up is not None:
                self.on_give_up()

    def describe(self) -> str:
        since = 0.0 if self.failing_since is None else self._clock() - self.failing_since
        how_long = f" for {since:.0f}s" if since >= 1 else ""
        return (
            f"no usable answer from {self.base_url}{how_long} ({self.error}): attempt "
            f"{self.attempt} of {GIVE_UP_AFTER} failed, trying again"
        )

    def trouble(self) -> Text | None:
        """A line for live views while requests fail."""
        if self.last_failure is None or self._clock() - self.last_failure > 10.0:
            return None
        return Text(clean(self.describe(), one_line=True), style="yellow")

    def tried(self) -> str:
        """How long it was tried, for the message that ends a command."""
        since = 0.0 if self.failing_since is None else self._clock() - self.failing_since
        return f"gave no usable answer: gave up after {self.attempt + 1} attempts in {since:.1f}s"

    def give_up_error(self) -> KlingError:
        return TransportError(
            f"{self.given_up}; {self.base_url} {self.tried()}", request_sent=False
        )


class LiveView:
    """A live region redrawn ~8 times a second while stdout is a terminal; nothing otherwise.
    Notes printed while it is shown go above it; after Ctrl-C it is erased, not left stale."""

    def __init__(
        self,
        out: Output,
        render: Callable[[], RenderableType],
        *,
        transient: bool = False,
        reach: Reach | None = None,
    ) -> None:
        self.out = out
        self.render = render
        self.transient = transient
        self.reach = reach
        self._live: Live | None = None
        self._refresher: asyncio.Task[None] | None = None

    def _draw(self) -> RenderableType:
        trouble = self.reach.trouble() if self.reach is not None else None
        return self.render() if trouble is None else Group(self.render(), trouble)

    async def __aenter__(self) -> LiveView:
        if self.out.live:
            self._live = Live(
                self._draw(),
                console=self.out.console,
                auto_refresh=False,
                transient=self.transient,
            )
            self._live.start(refresh=True)
            self.out.live_started()
            if self.reach is not None:
                self.reach.live = True
            self._refresher = asyncio.ensure_future(self._refresh())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        if self._live is not None:
            if exc_type is not None:  # interrupted, or failed: what it showed is stale now
                self._live.transient = True
            else:
                self._live.update(self._draw(), refresh=True)
            self._live.stop()
            self.out.live_stopped()
            if self.reach is not None:
                self.reach.live = False

    async def _refresh(self) -> None:
        assert self._live is not None
        while True:
            await asyncio.sleep(0.125)
            self._live.update(self._draw(), refresh=True)

    def log(self, line: Text) -> None:
        """A line for people: above the live region, or on its own (not in JSON mode)."""
        self.out.line(line)


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(max(0.0, seconds)), 60)
    return f"{minutes}m{secs:02d}s"


def _change_line(change: StatusChange, elapsed: float) -> Text:
    line = Text(f"+{_clock_text(elapsed):>7}  {change.task_id}  ")
    if change.previous is not None:
        line += status_text(change.previous) + Text(" -> ")
    line += status_text(change.current)
    video = change.task.video
    if change.timed_out:
        line.append("  stopped waiting (the task runs on)", style="magenta")
    elif change.error is not None:
        line.append(f"  {change.error}", style="red")
    elif video is not None:
        line.append(f"  video {video.id} ({video.duration or '?'}s) {video.url}", style="green")
    elif images := change.task.task_result.images:
        line.append(f"  {len(images)} images {' '.join(i.url for i in images)}", style="green")
    elif change.task.task_status_msg:
        line.append(f"  {change.task.task_status_msg}", style="red")
    line.plain = clean(line.plain, one_line=True)
    return line


async def follow(
    out: Output,
    kling: KlingClient,
    reach: Reach,
    tasks: Sequence[Task],
    *,
    timeout: float | None,
    interrupted: Callable[[], bool],
) -> dict[str, StatusChange]:
    """Watch ``tasks`` to their end with a live display; the last change of each task. Ends
    with :class:`TransportError` when the API stops answering (``Reach``)."""
    clock = kling.clock
    started = clock.monotonic()
    last: dict[str, StatusChange] = {}
    changed_at: dict[str, float] = {}
    ids = [t.task_id for t in tasks]
    spinner = Spinner("dots")

    def render() -> RenderableType:
        now = clock.monotonic()
        if len(ids) == 1:
            change = last.get(ids[0])
            status = change.current if change is not None else tasks[0].task_status
            since = now - changed_at.get(ids[0], started)
            text = Text(f"task {clean(ids[0], one_line=True)}: ") + status_text(status)
            text.append(f" for {_clock_text(since)}", style="dim")
            spinner.update(text=text)
            return spinner
        table = Table(box=None, pad_edge=False)
        id_column(table, "task", ids[:30])
        for column in ("status", "for", "note"):
            table.add_column(column)
        for task in tasks[:30]:
            change = last.get(task.task_id)
            age = _clock_text(now - changed_at.get(task.task_id, started))
            note = "" if change is None else (change.task.task_status_msg or "")
            status = change.current if change else task.task_status
            add_row(table, task.task_id, status_text(status), age, note)
        if len(ids) > 30:
            table.caption = f"and {len(ids) - 30} more"
        return table

    watch = kling.watch(list(tasks), timeout=timeout)
    reach.on_give_up = watch.close
    try:
        async with (
            LiveView(out, render, transient=len(ids) == 1, reach=reach) as view,
            watch as changes,
        ):
            async for change in changes:
                last[change.task_id] = change
                changed_at[change.task_id] = clock.monotonic()
                out.emit("change", **change_json(change))
                view.log(_change_line(change, clock.monotonic() - started))
    except asyncio.CancelledError:
        if interrupted():
            _still_running(out, ids, last)
        raise
    finally:
        reach.on_give_up = None
    if reach.given_up is not None:
        _still_running(out, ids, last)
        raise reach.give_up_error()
    return last


def _still_running(out: Output, ids: Sequence[str], last: dict[str, Any]) -> None:
    running = [i for i in ids if i not in last or not last[i].is_final]
    if running:
        out.note(
            f"not finished: {' '.join(running)}; follow again with: "
            f"kling-async watch {' '.join(running)}"
        )
