"""Downloading finished videos: streamed to disk, never half-written, never fetched twice.

Each video is written to a temporary name beside its destination and renamed into place only
once complete and of the announced size, so an interrupted run never leaves a file that looks
finished. Files already there are skipped. Kling purges results 30 days after generation
(kling-api.md §8.4): such a task is reported ``expired`` without a request.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import attrs

from .clock import Clock
from .errors import KlingError, ResponseFormatError
from .models import Task, TaskStatus

__all__ = ["PURGE_AFTER", "DownloadResult", "Stream", "download_videos"]

PURGE_AFTER = 30 * 86_400.0



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


def _target(task: Task, dest: Path, watermarked: bool) -> tuple[str, str, Path] | None:
    video = task.video
    if task.task_status is not TaskStatus.SUCCEED or video is None:
        return None
    url = video.watermark_url if watermarked and video.watermark_url else video.url
    suffix = "-wm" if watermarked and video.watermark_url else ""
    return video.id, url, dest / f"{video.id}{suffix}.mp4"


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
        target = _target(task, folder, watermarked)
        if target is None:
            return DownloadResult(task.task_id, None, None, "no_video")
        video_id, url, path = target
        if task.created_at and now - task.created_at / 1000 > PURGE_AFTER:
            return DownloadResult(task.task_id, video_id, path, "expired")
        if await asyncio.to_thread(path.exists):
            size = (await asyncio.to_thread(path.stat)).st_size
            return DownloadResult(task.task_id, video_id, path, "skipped", size)
        async with limit:
            try:
                size = await _fetch(stream, url, path)
            except KlingError as error:
                return DownloadResult(task.task_id, video_id, path, "failed", error=error)
        return DownloadResult(task.task_id, video_id, path, "downloaded", size)

    return list(await asyncio.gather(*(one(t) for t in tasks)))
