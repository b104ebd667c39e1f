"""``kling-async extend``, ``text2video``, ``image2video``, ``create``, ``get`` and ``watch``: one
task or a few at a time. A task id alone is enough: without ``--kind`` each family is tried in turn
(video-extend first), so any task a command printed can be fetched by its id."""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..client import KlingClient
from ..errors import InvalidRequestError, KlingError
from ..kinds import KINDS
from ..models import StatusChange, Task, TaskStatus
from ..requests.fields import build_request, field_names
from .live import LiveView, follow
from .output import add_row, clean, id_column, status_text, task_json
from .session import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    Context,
    UsageError,
    check_credentials,
    open_client,
)

__all__ = ["create_command", "fetch_tasks", "get_command", "missing_note", "watch_command"]

# Fields that take ``@path`` for a local file (read as raw base64).
_IMAGE_FLAGS = (
    "image",
    "image_tail",
    "static_mask",
    "image_url",
    "human_image",
    "cloth_image",
    "scene_image",
    "style_image",
    "sound_file",
)


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
    them), and ``create``'s ``-f NAME=VALUE`` pairs; ``@path`` images read."""
    fields = {n: getattr(args, n) for n in field_names(kind) if getattr(args, n, None) is not None}
    for pair in getattr(args, "field", None) or ():
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"-f takes NAME=VALUE, got {pair!r}")
        if name.strip() in fields:
            raise UsageError(f"field {name.strip()} is given twice")
        fields[name.strip()] = value
    for name in _IMAGE_FLAGS:
        if isinstance(fields.get(name), str) and fields[name].startswith("@"):
            fields[name] = _read_image(fields[name])
    return fields


async def create_command(ctx: Context) -> int:
    """``extend``, ``text2video``, ``image2video``, ``create --kind``: create one task;
    ``--wait`` follows it."""
    args, out = ctx.args, ctx.out
    kind = args.create_kind or args.kind
    # Validate before anything else happens (exit 2 naming the field).
    request = build_request(kind, _request_fields(args, kind), text=True)
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
        changes = await follow(
            out, kling, ctx.reach, [task], timeout=args.timeout, interrupted=ctx.by_a_person
        )
    return _outcome_code(changes, [task.task_id])


# -- get -----------------------------------------------------------------------------------------


async def _lookup(kling: KlingClient, task_id: str, kind: str | None) -> Task | KlingError:
    """The task of ``kind``, or of the first family that knows the id (``kind`` None)."""
    error: KlingError | None = None
    for name in [kind] if kind is not None else list(KINDS):
        try:
            return await kling.get_task(task_id, kind=name)
        except InvalidRequestError as refused:  # not found, or not an id of this family
            error = error or refused
    assert error is not None
    return error


async def fetch_tasks(
    ctx: Context, kling: KlingClient, ids: Sequence[str], kind: str | None
) -> tuple[list[Task], dict[str, KlingError]]:
    """The tasks that exist, and why the others could not be had (not found), while a live
    line says what is being looked up (and, if the API does not answer, that it is trying)."""
    limit = asyncio.Semaphore(8)

    async def one(task_id: str) -> Task | KlingError:
        async with limit:
            return await _lookup(kling, task_id, kind)

    spinner = Spinner("dots", text=f"looking up {len(ids)} task(s) at {kling.base_url}")
    async with LiveView(ctx.out, lambda: spinner, transient=True, reach=ctx.reach):
        results = await asyncio.gather(*(one(i) for i in ids))
    found: list[Task] = []
    missing: dict[str, KlingError] = {}
    for task_id, result in zip(ids, results, strict=True):
        if isinstance(result, Task):
            found.append(result)
        else:
            missing[task_id] = result
    return found, missing


def missing_note(ctx: Context, task_id: str, error: KlingError, kind: str | None) -> None:
    where = (
        f"not a {kind} task (without --kind every family is tried)"
        if kind is not None
        else "no task family knows it"
    )
    ctx.out.emit("missing", task_id=task_id, kind=kind, message=str(error))
    ctx.out.note(Text(f"{task_id}: not found: {where} ({error})", style="red"))


def _image_urls(task: Task) -> str:
    return "\n".join(image.url for image in task.task_result.images)


def _task_table(tasks: Sequence[Task]) -> Table:
    table = Table(title_justify="left")
    id_column(table, "task", [t.task_id for t in tasks])
    table.add_column("kind", no_wrap=True)
    table.add_column("status", no_wrap=True)
    id_column(table, "video", [t.video.id for t in tasks if t.video])
    for column in ("seconds", "url / message"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        video = task.video
        add_row(
            table,
            task.task_id,
            task.kind,
            status_text(task.task_status),
            video.id if video else "",
            "" if video is None or video.duration is None else f"{video.duration:g}",
            video.url if video else _image_urls(task) or task.task_status_msg,
        )
    return table


def _table_width(tasks: Sequence[Task]) -> int:
    """Columns the table needs to show every id, kind and status whole, and some of the URL."""
    widest = [max(len(getattr(t, name)) for t in tasks) for name in ("task_id", "kind")] + [
        max((len(t.video.id) for t in tasks if t.video), default=5),
        10,
        7,
        30,
    ]
    return sum(widest) + 3 * len(widest) + 1


def _task_lines(tasks: Sequence[Task]) -> list[Text]:
    """The tasks as lines, for a terminal too narrow for the table: ids are never cut."""
    lines = []
    for task in tasks:
        line = Text(f"{task.task_id}  {task.kind}  ") + status_text(task.task_status)
        video = task.video
        if video is not None:
            seconds = "" if video.duration is None else f" ({video.duration:g}s)"
            line.append(f"\n  video {video.id}{seconds}\n  {video.url}")
        elif task.task_result.images:
            line.append("".join(f"\n  {image.url}" for image in task.task_result.images))
        elif task.task_status_msg:
            line.append(f"\n  {clean(task.task_status_msg, one_line=True)}", style="red")
        lines.append(line)
    return lines


async def get_command(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    check_credentials(args)
    async with open_client(ctx) as kling:
        found, missing = await fetch_tasks(ctx, kling, args.task_ids, args.kind)
    for task in found:
        out.emit("task", **task_json(task))
    if found:
        if out.console.width >= _table_width(found):
            out.print(_task_table(found))
        else:
            for line in _task_lines(found):
                out.print(line)
    for task_id, error in missing.items():
        missing_note(ctx, task_id, error, args.kind)
    return EXIT_INCOMPLETE if missing else EXIT_OK


# -- watch ---------------------------------------------------------------------------------------


async def watch_command(ctx: Context) -> int:
    """Follow tasks to their end. Each is looked up first (its family, and whether the API can
    be reached at all: an unreachable one ends the command with exit 4 after the usual
    retries, instead of a watch that waits forever)."""
    args, out = ctx.args, ctx.out
    ids: list[str] = list(dict.fromkeys(args.task_ids))
    check_credentials(args)
    async with open_client(ctx) as kling:
        found, missing = await fetch_tasks(ctx, kling, ids, args.kind)
        for task_id, error in missing.items():
            missing_note(ctx, task_id, error, args.kind)
        changes: dict[str, StatusChange] = {}
        if found:
            changes = await follow(
                out,
                kling,
                ctx.reach,
                found,
                timeout=args.timeout,
                interrupted=ctx.by_a_person,
            )
    counts: dict[str, int] = {}
    for change in changes.values():
        name = "timed out" if change.timed_out else "error" if change.error else change.current
        counts[str(name)] = counts.get(str(name), 0) + 1
    if missing:
        counts["not found"] = len(missing)
    out.emit("summary", counts=counts, total=len(ids))
    out.line(Text("  ".join(f"{n} {name}" for name, n in sorted(counts.items())), style="bold"))
    return _outcome_code(changes, ids)
