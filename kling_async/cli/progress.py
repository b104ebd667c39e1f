"""What ``kling-async batch`` shows people while it runs, and the tables that end the run.

``BatchView`` draws progress bars when stdout is a terminal, writes a line for each outcome that
needs one, and emits ``outcome`` objects with ``--json``; ``summary_table`` and
``failures_table`` are the closing summary.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterable, Iterator
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, Task, TaskID, TextColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..batch.run import Batch, Outcome
from .output import Output, add_row, coded, id_column
from .report import OUTCOME_STYLE, SHOWN_FAILURES

__all__ = ["BatchView", "failures_table", "summary_table"]


# -- the live view -------------------------------------------------------------------------------


class _StyledBar(BarColumn):
    """A bar coloured by its task's ``style`` field."""

    def render(self, task: Task) -> ProgressBar:
        self.complete_style = self.finished_style = task.fields.get("style", "bar.complete")
        return super().render(task)


class _BarsWithFooter(Progress):
    footer: Text = Text()

    def get_renderables(self) -> Iterator[Any]:
        yield self.make_tasks_table(self.tasks)
        yield self.footer


class BatchView:
    """Progress bars on a terminal, one line per outcome in a log, objects in JSON mode.

    The bars are what a person asks of a batch: how many requests were sent, how many are
    running on Kling (queued or processing), how many succeeded and failed; the line under
    them has the slots in use, what is left to send and an ETA from the pace seen so far.
    After Ctrl-C they are erased (the interrupted summary follows), not left stale.
    """

    _BARS = (("sent", "cyan"), ("running", "yellow"), ("succeeded", "green"), ("failed", "red"))

    def __init__(self, out: Output, batch: Batch, total: int) -> None:
        self.out = out
        self.batch = batch
        self.total = total
        self.counts: collections.Counter[str] = collections.Counter()
        self.started = time.monotonic()
        self._finished_here = 0  # outcomes of this run, not replayed from the journal
        self._bars: _BarsWithFooter | None = None
        self._ids: dict[str, TaskID] = {}
        self._refresher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BatchView:
        if self.out.live:
            bars = _BarsWithFooter(
                TextColumn("{task.description:>10}"),
                _StyledBar(bar_width=None),
                MofNCompleteColumn(),
                console=self.out.console,
                auto_refresh=False,
                expand=True,
            )
            for name, style in self._BARS:
                self._ids[name] = bars.add_task(name, total=self.total, style=style)
            self._bars = bars
            bars.start()
            self.out.live_started()
            self._redraw()
            self._refresher = asyncio.ensure_future(self._refresh())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        if self._bars is not None:
            if exc_type is not None:  # interrupted or failed: the bars are no longer true
                self._bars.live.transient = True
            else:
                self._redraw()
            self._bars.stop()
            self.out.live_stopped()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self._redraw()

    def values(self) -> dict[str, int]:
        """What the bars show."""
        p = self.batch.progress
        done = self.done
        return {
            "sent": self.total - p.waiting,
            "running": p.submitted + p.processing,
            "succeeded": self.counts["succeed"],
            "failed": done - self.counts["succeed"],
        }

    def eta(self) -> float | None:
        """Seconds until the last request ends, at the pace this run has kept so far."""
        if self._finished_here == 0:
            return None
        pace = (time.monotonic() - self.started) / self._finished_here
        return pace * (self.total - self.done)

    def footer(self) -> str:
        p = self.batch.progress
        bits = [f"{self.done}/{self.total} done"]
        if p.waiting > 0:
            bits.append(f"{p.waiting} to send")
        if p.slot_limit:
            bits.append(f"slots {p.slots_in_use}/{p.slot_limit} in use")
        elif p.slots_in_use:
            bits.append(f"{p.slots_in_use} slots in use")
        others = {k: v for k, v in self.counts.items() if k not in ("succeed", "failed")}
        bits.extend(f"{v} {k}" for k, v in sorted(others.items()))
        eta = self.eta()
        if self.done < self.total:
            bits.append("ETA " + ("-" if eta is None else _elapsed(eta)))
        bits.append(_elapsed(time.monotonic() - self.started))
        return " · ".join(bits)

    def _redraw(self) -> None:
        bars = self._bars
        if bars is None:
            return
        for name, value in self.values().items():
            bars.update(self._ids[name], completed=value)
        bars.footer = Text("  " + self.footer(), style="dim")
        bars.refresh()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def outcome(self, record: dict[str, Any], outcome: Outcome) -> None:
        self.counts[outcome.outcome] += 1
        if not outcome.from_journal:
            self._finished_here += 1
        self.out.emit("outcome", **record)
        if self.out.json or (outcome.ok and (self.out.live or outcome.from_journal)):
            return  # successes show in the bars, or were logged by the run that saw them
        self.out.line(_outcome_line(record))
        if self._bars is not None:
            self._redraw()


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _source(record: dict[str, Any]) -> str:
    """What a request was made from, for people: its video, else its kind."""
    return f"video {record['video_id']}" if "video_id" in record else str(record["kind"])


def _outcome_line(record: dict[str, Any]) -> Text:
    outcome = record["outcome"]
    line = Text(f"{outcome:>9}", style=OUTCOME_STYLE.get(outcome, "magenta"))
    line.append(f"  line {record['line']:<4} {_source(record)}")
    if record["task_id"]:
        line.append(f"  task {record['task_id']}")
    if record.get("result_video_id"):
        line.append(f"  -> video {record['result_video_id']}", style="green")
    elif record.get("result_urls"):
        line.append(f"  -> {len(record['result_urls'])} images", style="green")
    if record["message"]:
        line.append(f"  {record['message']}", style="dim")
    if record["from_journal"]:
        line.append("  (earlier run)", style="dim")
    return line


# -- the summary ---------------------------------------------------------------------------------


def summary_table(counts: dict[str, int], total: int, units: float, elapsed: float) -> Table:
    table = Table(show_footer=True)
    table.add_column("outcome", footer="total")
    table.add_column("requests", justify="right", footer=str(total))
    for name in ("succeed", "failed", "rejected", "timed_out", "ambiguous", "not_sent"):
        if counts.get(name):
            add_row(table, Text(name, style=OUTCOME_STYLE.get(name, "magenta")), str(counts[name]))
    table.caption = f"{units:g} units · {_elapsed(elapsed)}"
    return table


def failures_table(records: Iterable[dict[str, Any]]) -> Table | None:
    bad = [r for r in records if r["outcome"] != "succeed"]
    if not bad:
        return None
    table = Table(title=f"not succeeded ({len(bad)})", title_justify="left")
    shown = sorted(bad, key=lambda r: r["line"])[:SHOWN_FAILURES]
    table.add_column("line", no_wrap=True)
    table.add_column("request", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    id_column(table, "task_id", [r["task_id"] or "" for r in shown])
    table.add_column("message", overflow="fold")
    for r in shown:
        add_row(
            table,
            str(r["line"]),
            _source(r),
            r["outcome"],
            r["task_id"] or "",
            coded(r.get("code"), r["message"]),
        )
    if len(bad) > SHOWN_FAILURES:
        table.caption = f"and {len(bad) - SHOWN_FAILURES} more: see the results file"
    return table
