"""``kling-async report JOURNAL``, and what a batch journal says (also used by ``batch``).

``Journal.read`` opens the file read-only and takes no lock, so a report works while the batch
that writes the journal is still running.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from rich.table import Table
from rich.text import Text

from ..journal import Journal, JournalEntry
from ..serde import request_from_wire, structure_task
from .files import check_input_file
from .output import add_row, coded, id_column, milliseconds
from .session import EXIT_INCOMPLETE, EXIT_OK, Context
from .shared import is_shared, read_shared

__all__ = [
    "OUTCOME_STYLE",
    "SHOWN_FAILURES",
    "JournalSummary",
    "discard_journal",
    "read_journal",
    "report_command",
    "summarize_journal",
]

SHOWN_FAILURES = 10
OUTCOME_STYLE = {"succeed": "green", "failed": "red", "rejected": "red"}


# -- the journal, summarised ---------------------------------------------------------------------


@attrs.frozen
class JournalSummary:
    """What a journal says about its batch."""

    entries: int
    counts: dict[str, int]  # final outcomes
    running: list[str]  # task ids created and not finished
    unconfirmed: list[str]  # keys sent whose answer never came: looked up before any resend
    unsent: list[str]  # keys recorded but never sent
    units: float
    failures: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @property
    def all_succeeded(self) -> bool:
        return self.entries > 0 and self.counts.get("succeed", 0) == self.entries


def _units(entry: JournalEntry) -> float:
    if entry.task_json is None:
        return 0.0
    try:
        data = json.loads(entry.task_json)
        return float(data.get("final_unit_deduction") or 0.0)
    except (ValueError, TypeError, AttributeError):
        return 0.0


def summarize_journal(entries: Sequence[JournalEntry]) -> JournalSummary:
    counts: collections.Counter[str] = collections.Counter()
    running: list[str] = []
    unconfirmed: list[str] = []
    unsent: list[str] = []
    failures: list[dict[str, Any]] = []
    units = 0.0
    for entry in entries:
        units += _units(entry)
        if entry.state == "created" and entry.task_id is not None:
            running.append(entry.task_id)
        elif entry.state == "intent":
            (unsent if entry.sent_at is None else unconfirmed).append(entry.key)
        elif entry.outcome is not None:
            counts[entry.outcome] += 1
            if entry.outcome != "succeed":
                detail = entry.detail or {}
                # The journal holds {"kind", "body"}: the request as it was sent.
                request = request_from_wire(entry.request["kind"], entry.request["body"])
                failures.append(
                    {
                        "key": entry.key,
                        "kind": request.kind,
                        "outcome": entry.outcome,
                        "video_id": request.parent_video_id,
                        "task_id": entry.task_id,
                        "code": detail.get("code"),
                        "message": detail.get("message") or detail.get("error") or "",
                    }
                )
    return JournalSummary(len(entries), dict(counts), running, unconfirmed, unsent, units, failures)


def discard_journal(path: Path) -> None:
    """Delete a journal's files, but not its lock files: a lock is its file's inode, and a new
    one would let a second process in beside one that still holds the old."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def read_journal(path: Path) -> list[JournalEntry]:
    """The entries of an existing journal, or [] if there is none yet."""
    if not path.exists():
        return []
    return Journal.read(path)


# -- report --------------------------------------------------------------------------------------


async def report_command(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    if is_shared(args.journal):  # a batch in PostgreSQL, seen from any machine
        from ..postgres import redact_dsn

        name, entries = await read_shared(ctx)
        where = f"{redact_dsn(args.journal)} batch {name!r}"
    else:
        path = Path(args.journal)
        await asyncio.to_thread(check_input_file, path, "journal")
        entries, where = Journal.read(path), str(path)
    summary = summarize_journal(entries)
    if args.entries:
        for entry in entries:
            out.emit("entry", **_entry_json(entry))
    out.emit("report", journal=where, **summary.to_dict())
    out.line(Text(f"journal {where}", style="bold"))
    table = Table(show_footer=True)
    table.add_column("state", footer="total")
    table.add_column("requests", justify="right", footer=str(summary.entries))
    for name, count in sorted(summary.counts.items()):
        add_row(table, Text(name, style=OUTCOME_STYLE.get(name, "magenta")), str(count))
    if summary.running:
        add_row(table, Text("running", style="yellow"), str(len(summary.running)))
    if summary.unconfirmed:
        add_row(table, Text("sent, no answer", style="magenta"), str(len(summary.unconfirmed)))
    if summary.unsent:
        add_row(table, Text("not sent", style="dim"), str(len(summary.unsent)))
    table.caption = f"{summary.units:g} units"
    out.print(table)
    if summary.failures:
        failures = Table(title=f"not succeeded ({len(summary.failures)})", title_justify="left")
        shown = summary.failures[:SHOWN_FAILURES]
        failures.add_column("key", overflow="fold")
        failures.add_column("request", overflow="fold")
        failures.add_column("outcome", no_wrap=True)
        id_column(failures, "task_id", [f["task_id"] or "" for f in shown])
        failures.add_column("message", overflow="fold")
        for f in shown:
            source = f"video {f['video_id']}" if f["video_id"] else f["kind"]
            add_row(
                failures,
                f["key"],
                source,
                f["outcome"],
                f["task_id"] or "",
                coded(f.get("code"), str(f["message"])),
            )
        out.print(failures)
    return EXIT_OK if summary.all_succeeded else EXIT_INCOMPLETE


def _entry_json(entry: JournalEntry) -> dict[str, Any]:
    task = None
    if entry.task_json is not None:
        data = json.loads(entry.task_json)
        task = structure_task(data, data.get("kind", "video-extend"), root="$journal")
    return {
        "key": entry.key,
        "state": entry.state,
        "request": entry.request,
        "task_id": entry.task_id,
        "status": entry.status,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "sent_at": milliseconds(entry.sent_at),
        "result_video_id": task.video.id if task is not None and task.video else None,
        "result_url": task.video.url if task is not None and task.video else None,
    }
