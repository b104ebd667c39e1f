"""``kling-async extend``, ``text2video``, ``image2video``, ``get``, ``watch`` and ``download``:
one task or a few at a time."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .._fields import build_request, field_names
from ..client import KlingClient
from ..download import DownloadResult
from ..errors import InvalidRequestError, KlingError
from ..journal import Journal
from ..models import StatusChange, Task, TaskStatus
from ..serde import structure_task
from .output import Output, change_json, status_text, task_json
from .session import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    Context,
    UsageError,
    check_credentials,
    open_client,
)

__all__ = [
    "create_command",
    "download_command",
    "get_command",
    "show_downloads",
    "watch_command",
]

_IMAGE_FLAGS = ("image", "image_tail", "static_mask")  # they take ``@path`` for a local file


class LiveView:
    """A live region redrawn ~8 times a second while stdout is a terminal; nothing otherwise."""

    def __init__(
        self, out: Output, render: Callable[[], RenderableType], *, transient: bool = False
    ) -> None:
        self.out = out
        self.render = render
        self.transient = transient
        self._live: Live | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveView:
        if self.out.live:
            self._live = Live(
                self.render(),
                console=self.out.console,
                auto_refresh=False,
                transient=self.transient,
            )
            self._live.start(refresh=True)
            self._refresher = asyncio.ensure_future(self._refresh())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()

    async def _refresh(self) -> None:
        assert self._live is not None
        while True:
            await asyncio.sleep(0.125)
            self._live.update(self.render(), refresh=True)

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
    return line


async def follow(
    ctx: Context,
    kling: KlingClient,
    tasks: Sequence[Task | str],
    *,
    kind: str,
    timeout: float | None,
) -> dict[str, StatusChange]:
    """Watch ``tasks`` to their end with a live display; the last change of each task."""
    out, clock = ctx.out, kling.clock
    started = clock.monotonic()
    last: dict[str, StatusChange] = {}
    changed_at: dict[str, float] = {}
    ids = [t.task_id if isinstance(t, Task) else t for t in tasks]
    spinner = Spinner("dots")

    def render() -> RenderableType:
        now = clock.monotonic()
        if len(ids) == 1:
            change = last.get(ids[0])
            status = change.current if change is not None else None
            since = now - changed_at.get(ids[0], started)
            text = Text(f"task {ids[0]}: ") + status_text(status)
            text.append(f" for {_clock_text(since)}", style="dim")
            spinner.update(text=text)
            return spinner
        table = Table(box=None, pad_edge=False)
        for column in ("task", "status", "for", "note"):
            table.add_column(column)
        for task_id in ids[:30]:
            change = last.get(task_id)
            age = _clock_text(now - changed_at.get(task_id, started))
            note = "" if change is None else (change.task.task_status_msg or "")
            table.add_row(task_id, status_text(change.current if change else None), age, note)
        if len(ids) > 30:
            table.caption = f"and {len(ids) - 30} more"
        return table

    watch = kling.watch(tasks, kind=kind, timeout=timeout)
    try:
        async with LiveView(out, render, transient=len(ids) == 1) as view, watch as changes:
            async for change in changes:
                last[change.task_id] = change
                changed_at[change.task_id] = clock.monotonic()
                out.emit("change", **change_json(change))
                view.log(_change_line(change, clock.monotonic() - started))
    except asyncio.CancelledError:
        if ctx.interrupted:
            running = [i for i in ids if i not in last or not last[i].is_final]
            if running:
                out.note(
                    f"still running: {' '.join(running)}; follow again with: "
                    f"kling-async watch {' '.join(running)}"
                )
        raise
    return last


def _outcome_code(changes: dict[str, StatusChange], ids: Sequence[str]) -> int:
    ok = all(
        (c := changes.get(task_id)) is not None and c.current is TaskStatus.SUCCEED and not c.error
        for task_id in ids
    )
    return EXIT_OK if ok else EXIT_INCOMPLETE


# -- create: extend, text2video, image2video -----------------------------------------------------


def _read_image(value: str) -> str:
    """``@path``: the file's bytes as the raw base64 Kling takes (no ``data:`` prefix)."""
    path = Path(value[1:])
    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise UsageError(f"cannot read image {path}: {exc.strerror or exc}") from None


def _request_fields(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The flags of a create command that name fields of ``kind`` (flags are named after
    them), ``@path`` images read."""
    fields = {n: getattr(args, n) for n in field_names(kind) if getattr(args, n, None) is not None}
    for name in _IMAGE_FLAGS:
        if isinstance(fields.get(name), str) and fields[name].startswith("@"):
            fields[name] = _read_image(fields[name])
    return fields


async def create_command(ctx: Context) -> int:
    """``extend``, ``text2video``, ``image2video``: create one task; ``--wait`` follows it."""
    args, out = ctx.args, ctx.out
    # Validate before anything else happens (exit 2 naming the field).
    request = build_request(args.create_kind, _request_fields(args, args.create_kind), text=True)
    check_credentials(args)
    async with open_client(ctx, requests=[request]) as kling:
        task = await kling.create(request)
        out.emit("task", **task_json(task))
        source = request.parent_video_id
        what = request.kind if source is None else f"{request.kind} of video {source}"
        out.line(
            Text(f"created task {task.task_id} ")
            + status_text(task.task_status)
            + Text(f"  ({what})", style="dim")
        )
        if not args.wait:
            return EXIT_OK
        changes = await follow(ctx, kling, [task], kind=task.kind, timeout=args.timeout)
    return _outcome_code(changes, [task.task_id])


# -- get -----------------------------------------------------------------------------------------


async def _fetch(
    kling: KlingClient, ids: Sequence[str], kind: str
) -> tuple[list[Task], dict[str, KlingError]]:
    """The tasks that exist, and why the others could not be had (not found)."""
    limit = asyncio.Semaphore(8)

    async def one(task_id: str) -> Task | KlingError:
        async with limit:
            try:
                return await kling.get_task(task_id, kind=kind)
            except InvalidRequestError as error:  # not found, or not an id of this kind
                return error

    found: list[Task] = []
    missing: dict[str, KlingError] = {}
    for task_id, result in zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True):
        if isinstance(result, Task):
            found.append(result)
        else:
            missing[task_id] = result
    return found, missing


def _image_urls(task: Task) -> str:
    return "\n".join(image.url for image in task.task_result.images)


def _task_table(tasks: Sequence[Task]) -> Table:
    table = Table(title_justify="left")
    for column in ("task", "status", "video", "seconds", "url / message"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        video = task.video
        table.add_row(
            task.task_id,
            status_text(task.task_status),
            video.id if video else "",
            "" if video is None or video.duration is None else f"{video.duration:g}",
            video.url if video else _image_urls(task) or task.task_status_msg,
        )
    return table


async def get_command(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    check_credentials(args)
    async with open_client(ctx) as kling:
        found, missing = await _fetch(kling, args.task_ids, args.kind)
    for task in found:
        out.emit("task", **task_json(task))
    for task_id, error in missing.items():
        out.emit("missing", task_id=task_id, message=str(error))
    if found:
        out.print(_task_table(found))
    for task_id, error in missing.items():
        out.note(Text(f"{task_id}: not found ({error})", style="red"))
    return EXIT_INCOMPLETE if missing else EXIT_OK


# -- watch ---------------------------------------------------------------------------------------


async def watch_command(ctx: Context) -> int:
    args = ctx.args
    ids: list[str] = list(dict.fromkeys(args.task_ids))
    check_credentials(args)
    async with open_client(ctx) as kling:
        changes = await follow(ctx, kling, ids, kind=args.kind, timeout=args.timeout)
    counts: dict[str, int] = {}
    for change in changes.values():
        name = "timed out" if change.timed_out else "error" if change.error else change.current
        counts[str(name)] = counts.get(str(name), 0) + 1
    ctx.out.emit("summary", counts=counts, total=len(ids))
    ctx.out.line(Text("  ".join(f"{n} {name}" for name, n in sorted(counts.items())), style="bold"))
    return _outcome_code(changes, ids)


# -- download ------------------------------------------------------------------------------------


def _journal_tasks(path: Path) -> list[Task]:
    """The succeeded tasks recorded in a batch journal."""
    if not path.exists():
        raise UsageError(f"no journal at {path}")
    tasks = []
    for entry in Journal.read(path):
        if entry.outcome == "succeed" and entry.task_json is not None:
            data = json.loads(entry.task_json)
            tasks.append(structure_task(data, data.get("kind", "video-extend"), root="$journal"))
    return tasks


def _download_json(result: DownloadResult) -> dict[str, Any]:
    return {
        "task_id": result.task_id,
        "video_id": result.video_id,
        "path": None if result.path is None else str(result.path),
        "status": result.status,
        "size": result.size,
        "error": None if result.error is None else str(result.error),
    }


def show_downloads(ctx: Context, results: Sequence[DownloadResult]) -> bool:
    """Report downloads; whether any of them did not end with the file on disk."""
    out = ctx.out
    table = Table(title="downloads", title_justify="left")
    for column in ("task", "status", "bytes", "file / error"):
        table.add_column(column, overflow="fold")
    problems = False
    for result in results:
        out.emit("download", **_download_json(result))
        ok = result.status in ("downloaded", "skipped")
        problems |= not ok
        where = str(result.path or "") if ok else str(result.error or result.status)
        style = "green" if result.status == "downloaded" else "dim" if ok else "red"
        table.add_row(result.task_id, Text(result.status, style=style), str(result.size), where)
    if results:
        out.print(table)
    return problems


async def download_command(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    if not args.task_ids and not args.journal:
        raise UsageError("give task ids, or --journal FILE to download a batch's videos")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be >= 1")
    tasks = _journal_tasks(Path(args.journal)) if args.journal else []
    check_credentials(args)
    async with open_client(ctx) as kling:
        found, missing = await _fetch(kling, args.task_ids, args.kind)
        spinner = Spinner("dots", text=f"downloading {len(tasks) + len(found)} videos")
        async with LiveView(out, lambda: spinner, transient=True):
            results = await kling.download(
                [*tasks, *found],
                args.dest,
                concurrency=args.concurrency,
                watermarked=args.watermarked,
            )
    problems = show_downloads(ctx, results)
    for task_id, error in missing.items():
        out.emit("missing", task_id=task_id, message=str(error))
        out.note(Text(f"{task_id}: not found ({error})", style="red"))
    return EXIT_INCOMPLETE if problems or missing else EXIT_OK
