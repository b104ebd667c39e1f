"""``kling-async download``: the videos of finished tasks, by id or from a batch journal.

The destination is checked first (a folder that can be written: exit 2 otherwise). Tasks that
have not finished are reported as such (``not finished (processing)``), not as a missing
video, and a journal with nothing finished yet says so and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..download import DownloadResult
from ..journal import Journal
from ..models import Task, TaskStatus
from ..serde import structure_task
from .files import check_input_file, check_output_dir
from .live import LiveView
from .output import add_row, clean, id_column
from .report import summarize_journal
from .session import EXIT_INCOMPLETE, EXIT_OK, Context, UsageError, check_credentials, open_client
from .tasks import fetch_tasks, missing_note

__all__ = ["download_command", "show_downloads"]


def _journal_tasks(path: Path) -> list[Task]:
    """The succeeded tasks recorded in a batch journal."""
    tasks = []
    for entry in Journal.read(path):
        if entry.outcome == "succeed" and entry.task_json is not None:
            data = json.loads(entry.task_json)
            tasks.append(structure_task(data, data.get("kind", "video-extend"), root="$journal"))
    return tasks


def _status(result: DownloadResult, tasks: dict[str, Task]) -> str:
    """What happened, for people: a task without a video because it is still running says so."""
    task = tasks.get(result.task_id)
    if result.status == "no_video" and task is not None:
        if not task.is_terminal:
            return f"not finished ({task.task_status.value})"
        if task.task_status is not TaskStatus.SUCCEED:
            return str(task.task_status.value)
    return result.status


def _download_json(result: DownloadResult, status: str) -> dict[str, Any]:
    return {
        "task_id": result.task_id,
        "video_id": result.video_id,
        "path": None if result.path is None else str(result.path),
        "status": result.status,
        "detail": status,
        "size": result.size,
        "error": None if result.error is None else str(result.error),
    }


def show_downloads(
    ctx: Context, results: Sequence[DownloadResult], tasks: Sequence[Task] = ()
) -> bool:
    """Report downloads; whether any of them did not end with the file on disk."""
    out = ctx.out
    by_id = {t.task_id: t for t in tasks}
    table = Table(title="downloads", title_justify="left")
    id_column(table, "task", [r.task_id for r in results])
    table.add_column("status", no_wrap=True)
    for column in ("bytes", "file / error"):
        table.add_column(column, overflow="fold")
    problems = False
    for result in results:
        status = _status(result, by_id)
        out.emit("download", **_download_json(result, status))
        ok = result.status in ("downloaded", "skipped")
        problems |= not ok
        if ok:
            where = str(result.path or "")
        elif result.status == "no_video":
            where = "no video yet: download it once the task has succeeded"
        else:
            where = str(result.error or result.status)
        style = "green" if result.status == "downloaded" else "dim" if ok else "red"
        add_row(table, result.task_id, Text(status, style=style), str(result.size), where)
    if results:
        out.print(table)
    return problems


async def download_command(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    if not args.task_ids and not args.journal:
        raise UsageError("give task ids, or --journal FILE to download a batch's videos")
    dest = Path(args.dest)
    check_output_dir(dest, "downloads")
    tasks: list[Task] = []
    if args.journal:
        journal = Path(args.journal)
        check_input_file(journal, "journal")
        tasks = _journal_tasks(journal)
        if not tasks and not args.task_ids:
            left = summarize_journal(Journal.read(journal))
            out.emit("summary", downloaded=0, journal=str(journal), running=len(left.running))
            out.note(
                f"nothing to download: no task in {journal} has succeeded yet "
                f"({len(left.running)} running, {left.entries} requests)"
            )
            return EXIT_INCOMPLETE
    check_credentials(args)
    async with open_client(ctx) as kling:
        found, missing = await fetch_tasks(ctx, kling, args.task_ids, args.kind)
        wanted = [*tasks, *found]
        spinner = Spinner("dots", text=f"downloading {len(wanted)} videos into {clean(str(dest))}")
        async with LiveView(out, lambda: spinner, transient=True, reach=ctx.reach):
            results = await kling.download(
                wanted, dest, concurrency=args.concurrency, watermarked=args.watermarked
            )
    problems = show_downloads(ctx, results, wanted)
    for task_id, error in missing.items():
        missing_note(ctx, task_id, error, args.kind)
    return EXIT_INCOMPLETE if problems or missing else EXIT_OK
