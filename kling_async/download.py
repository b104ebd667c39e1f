"""Downloading finished videos: streamed to disk, never half-written, never fetched twice.

Each video is written to a temporary name beside its destination and renamed into place only
once complete and of the announced size, so an interrupted run never leaves a file that looks
finished. Files already there are skipped. Kling purges results 30 days after generation
(kling-api.md §8.4): such a task is reported ``expired`` without a request.

File names come from the server's video ids, so they are never used as paths as they are: an
id made of safe characters (letters, digits, ``_``, ``-``, inner dots; at most 100) is the name,
any other id is named by its hash, and the result must resolve inside ``dest``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import attrs

from .clock import Clock
from .errors import DownloadError, KlingError, ResponseFormatError
from .models import Task, TaskStatus

__all__ = ["PURGE_AFTER", "DownloadResult", "Stream", "download_videos", "file_stem"]

PURGE_AFTER = 30 * 86_400.0
_SAFE_STEM = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


class Stream(Protocol):
    """GET a media URL, handing its body to ``write``: ``Transport.stream``."""

    async def __call__(
        self, url: str, write: Callable[[bytes], Awaitable[object]]
    ) -> tuple[int, int | None]: ...


DownloadStatus = Literal["downloaded", "skipped", "expired", "failed", "no_video"]


@attrs.frozen
class DownloadResult:
    """What happened to one task's video. ``path`` is where it is (or would be)."""

    task_id: str
    video_id: str | None
    path: Path | None
    status: DownloadStatus
    size: int = 0
    error: KlingError | None = None


def file_stem(video_id: str) -> str:
    """The file name (without ``.mp4``) for a video id: the id itself if it is made of safe
    characters, else ``id-`` and a hash of it (an id with ``/``, ``..``, a NUL byte, or 300
    characters names no file of its own choosing)."""
    if _SAFE_STEM.fullmatch(video_id) and ".." not in video_id:
        return video_id
    return "id-" + hashlib.sha256(video_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _target(task: Task, dest: Path, watermarked: bool) -> tuple[str, str, Path] | None:
    video = task.video
    if task.task_status is not TaskStatus.SUCCEED or video is None:
        return None
    url = video.watermark_url if watermarked and video.watermark_url else video.url
    suffix = "-wm" if watermarked and video.watermark_url else ""
    path = dest / f"{file_stem(video.id)}{suffix}.mp4"
    if path.resolve().parent != dest.resolve():  # a symlinked dest is fine; an escape is not
        raise DownloadError(f"refused to write {path.name} outside {dest}")
    return video.id, url, path


async def _fetch(stream: Stream, url: str, path: Path) -> int:
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    handle: BinaryIO = await asyncio.to_thread(part.open, "wb")
    try:

        async def write(chunk: bytes) -> None:
            await asyncio.to_thread(handle.write, chunk)

        received, expected = await stream(url, write)
        await asyncio.to_thread(handle.close)
        if expected is not None and received != expected:
            raise ResponseFormatError(
                f"download of {path.name} was cut short: {received} of {expected} bytes"
            )
        if received == 0:
            raise ResponseFormatError(f"download of {path.name} was empty")
        await asyncio.to_thread(os.replace, part, path)
        return received
    finally:
        if not handle.closed:
            await asyncio.to_thread(handle.close)
        await asyncio.to_thread(part.unlink, missing_ok=True)


async def download_videos(
    stream: Stream,
    clock: Clock,
    tasks: Iterable[Task],
    dest: str | os.PathLike[str],
    *,
    concurrency: int = 4,
    watermarked: bool = False,
) -> list[DownloadResult]:
    """Download the result video of every finished task into ``dest``, ``concurrency`` at a
    time; one :class:`DownloadResult` per task, in the order given. Errors are reported in the
    results, not raised, so one bad URL does not stop the rest."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    folder = Path(dest)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    limit = asyncio.Semaphore(concurrency)
    now = clock.time()

    async def one(task: Task) -> DownloadResult:
        video = task.video
        video_id = video.id if video is not None else None
        path: Path | None = None
        try:
            target = await asyncio.to_thread(_target, task, folder, watermarked)
            if target is None:
                return DownloadResult(task.task_id, None, None, "no_video")
            video_id, url, path = target
            if task.created_at and now - task.created_at / 1000 > PURGE_AFTER:
                return DownloadResult(task.task_id, video_id, path, "expired")
            if await asyncio.to_thread(path.exists):
                size = (await asyncio.to_thread(path.stat)).st_size
                return DownloadResult(task.task_id, video_id, path, "skipped", size)
            async with limit:
                size = await _fetch(stream, url, path)
        except KlingError as error:
            return DownloadResult(task.task_id, video_id, path, "failed", error=error)
        except (OSError, ValueError) as exc:  # the disk, or a path the OS would not take
            failure = DownloadError(f"could not write the video: {type(exc).__name__}: {exc}")
            failure.__cause__ = exc
            return DownloadResult(task.task_id, video_id, path, "failed", error=failure)
        return DownloadResult(task.task_id, video_id, path, "downloaded", size)

    # Every one() returns a result rather than raise, so gather never abandons the others; if
    # download() itself is cancelled, gather cancels them all.
    return list(await asyncio.gather(*(one(t) for t in tasks)))
