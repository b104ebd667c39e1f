"""Emulated tasks and videos, and the store that owns them.

A task's life is not driven by timers: it is computed from the clock whenever someone looks
(``submitted`` until ``created_at + queued``, ``processing`` until ``+ running``, then
``succeed`` or ``failed``). So a ``FakeClock.advance`` or a ``ScaledClock`` moves every task at
once, and 10,000 tasks cost nothing while they wait.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import attrs

__all__ = ["ImageRecord", "Phase", "TaskRecord", "TaskStore", "VideoRecord"]

SUBMITTED = "submitted"
PROCESSING = "processing"
SUCCEED = "succeed"
FAILED = "failed"


@attrs.frozen
class Phase:
    """One status of a task's life and the clock time (seconds) it began."""

    status: str
    at: float


@attrs.define(eq=False)
class VideoRecord:
    """A generated video: who made it, how long it is, from when it exists (clock seconds),
    and the kind and model of the task that made it (an extend takes only some, kling-api.md
    3.1)."""

    video_id: str
    task_id: str
    duration: float
    ready_at: float
    kind: str = "text2video"
    model: str = "kling-v1"


@attrs.define(eq=False)
class ImageRecord:
    """A generated image: its own id (for its URL), its place in the task's result, its task."""

    image_id: str
    task_id: str
    index: int
    ready_at: float


@attrs.define(eq=False)
class TaskRecord:
    """What the emulator knows about one task. Times are clock seconds, not milliseconds.

    ``failure`` is the ``task_status_msg`` the task ends with (``None``: it succeeds).
    ``output`` says what it produces: ``"videos"`` (``result``, one video) or ``"images"``
    (``images``), shown once the task has succeeded. ``slots`` is how many of the account's
    task slots it holds until it ends (kling-api.md 7.1: ``n`` for image generation).
    """

    task_id: str
    kind: str
    created_at: float
    queued: float
    running: float
    seq: int
    failure: str | None = None
    external_task_id: str | None = None
    parent: VideoRecord | None = None
    result: VideoRecord | None = None
    output: str = "videos"
    images: tuple[ImageRecord, ...] = ()
    slots: int = 1
    watermark: bool = False
    callback_url: str | None = None
    units: float = 0.0
    body: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ends_at(self) -> float:
        return self.created_at + self.queued + self.running

    def phases(self) -> tuple[Phase, Phase, Phase]:
        """The three statuses the task goes through, in order."""
        end = FAILED if self.failure is not None else SUCCEED
        return (
            Phase(SUBMITTED, self.created_at),
            Phase(PROCESSING, self.created_at + self.queued),
            Phase(end, self.ends_at),
        )

    def phase_at(self, now: float) -> Phase:
        """The status at clock time ``now``; each phase starts at its own instant."""
        current, *later = self.phases()
        for phase in later:
            if now >= phase.at:
                current = phase
        return current


class TaskStore:
    """Every task and video of the one emulated account, with seeded id generation."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seq = 0
        self.tasks: dict[str, TaskRecord] = {}
        self.videos: dict[str, VideoRecord] = {}
        self.images: dict[str, ImageRecord] = {}
        # Several tasks per id only when the emulator accepts duplicates (a knob).
        self._external: dict[str, list[TaskRecord]] = {}

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def new_task_id(self) -> str:
        """An unused 18-digit numeric string, like real task ids."""
        while True:
            task_id = str(self._rng.randrange(10**17, 10**18))
            if task_id not in self.tasks:
                return task_id

    def new_video_id(self) -> str:
        """An unused UUID-shaped video id (deliberately unlike task ids, see gotcha 8.3)."""
        while True:
            video_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if video_id not in self.videos:
                return video_id

    def new_image_id(self) -> str:
        """An unused UUID-shaped image id."""
        while True:
            image_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if image_id not in self.images:
                return image_id

    def add(self, task: TaskRecord) -> None:
        self.tasks[task.task_id] = task
        if task.external_task_id is not None:
            self._external.setdefault(task.external_task_id, []).append(task)
        if task.result is not None:
            self.videos[task.result.video_id] = task.result
        for image in task.images:
            self.images[image.image_id] = image

    def has_external(self, external_task_id: str) -> bool:
        return external_task_id in self._external

    def resolve(self, ident: str) -> TaskRecord | None:
        """A task by its id, else by its ``external_task_id`` (ids win, kling-api.md 5.3; of
        duplicates, the newest)."""
        found = self.tasks.get(ident)
        if found is None and ident in self._external:
            found = self._external[ident][-1]
        return found

    def by_external(self, external_task_id: str) -> list[TaskRecord]:
        """Every task created with ``external_task_id``, oldest first."""
        return list(self._external.get(external_task_id, ()))

    def ordered(self, kind: str, *, newest_first: bool = True) -> list[TaskRecord]:
        """The tasks of ``kind`` in creation order (or its reverse)."""
        found = [t for t in self.tasks.values() if t.kind == kind]
        found.sort(key=lambda t: (t.created_at, t.seq), reverse=newest_first)
        return found
