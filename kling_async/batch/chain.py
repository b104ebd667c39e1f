"""``extend_until``: extend a video step by step until it is long enough.

Each step extends the previous step's result video (whose id is new every time) with the
previous task as parent, and waits for it. Kling caps an extended video at three minutes and
adds 4-5 seconds per step (kling-api.md §3.1), so a target over 180 s is refused before anything
is sent. The chain records its lineage, parent video -> child video, step by step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from ..errors import RequestValidationError
from ..models import Task, Video

__all__ = ["MAX_VIDEO_SECONDS", "Chain", "ChainStep", "Extender", "extend_until"]

MAX_VIDEO_SECONDS = 180.0


class Extender(Protocol):
    """What a chain needs: create an extend and wait for it (a ``KlingClient`` is one)."""

    # Callables, not methods: a chain passes the caller's extend fields through as they are.
    @property
    def extend_video(self) -> Callable[..., Awaitable[Task]]: ...

    @property
    def wait(self) -> Callable[..., Awaitable[Task]]: ...


@attrs.frozen
class ChainStep:
    parent_video_id: str
    task: Task

    @property
    def video(self) -> Video:
        assert self.task.video is not None  # a step is recorded only once it succeeded
        return self.task.video


@attrs.frozen
class Chain:
    """The steps taken, in order; ``video`` is the final (whole) video."""

    start_video_id: str
    target_seconds: float
    steps: tuple[ChainStep, ...] = ()

    @property
    def video(self) -> Video | None:
        return self.steps[-1].video if self.steps else None

    @property
    def lineage(self) -> list[tuple[str, str]]:
        """``(parent video id, child video id)`` for every step."""
        return [(s.parent_video_id, s.video.id) for s in self.steps]


def _start(source: str | Video | Task, duration: float | None) -> tuple[str, float, str | None]:
    if isinstance(source, Task):
        video = source.video
        if video is None:
            raise RequestValidationError("video", f"task {source.task_id} has no result video")
        return (
            video.id,
            duration if duration is not None else (video.duration or 0.0),
            source.task_id,
        )
    if isinstance(source, Video):
        return source.id, duration if duration is not None else (source.duration or 0.0), None
    if duration is None:
        raise RequestValidationError("duration", "give the video's duration when passing an id")
    return source, duration, None


async def extend_until(
    client: Extender,
    source: str | Video | Task,
    target_seconds: float,
    *,
    duration: float | None = None,
    parent_task_id: str | None = None,
    step_timeout: float | None = 1800.0,
    **fields: Any,
) -> Chain:
    """Extend ``source`` until its duration reaches ``target_seconds``; see the module doc.

    ``fields`` (prompt, negative_prompt, cfg_scale, ...) apply to every step. Raises
    :class:`TaskFailedError`/:class:`TaskTimeoutError` from the step that did not finish; the
    steps before it are in the error's ``chain`` attribute.
    """
    if not 0 < target_seconds <= MAX_VIDEO_SECONDS:
        raise RequestValidationError(
            "target_seconds",
            f"must be in (0, {MAX_VIDEO_SECONDS:g}]: Kling caps extended videos at three minutes",
        )
    video_id, seconds, source_task = _start(source, duration)
    parent = parent_task_id or source_task
    chain = Chain(video_id, float(target_seconds))
    while seconds < target_seconds:
        try:
            task = await client.extend_video(video_id, parent_task_id=parent, **fields)
            done = await client.wait(task, timeout=step_timeout)
        except Exception as exc:
            exc.chain = chain  # type: ignore[attr-defined]
            raise
        chain = attrs.evolve(chain, steps=(*chain.steps, ChainStep(video_id, done)))
        video = chain.steps[-1].video
        video_id, parent = video.id, done.task_id
        seconds = video.duration if video.duration is not None else seconds + 4.0
    return chain
