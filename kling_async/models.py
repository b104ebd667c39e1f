"""What the API answers, as frozen attrs classes.

Field names follow the wire (``task_id``, ``task_status``...) so the docs of Kling and of this
library read the same. Reading is tolerant: unknown fields are ignored, missing optional ones get
defaults, unknown statuses become :attr:`TaskStatus.UNKNOWN` (with the text kept in
``Task.raw_status``). ``serde`` turns JSON into these classes.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = [
    "Envelope",
    "Face",
    "FaceIdentification",
    "Image",
    "ParentVideo",
    "StatusChange",
    "Task",
    "TaskInfo",
    "TaskResult",
    "TaskStatus",
    "Video",
    "WatermarkInfo",
]


class TaskStatus(str, enum.Enum):
    """A task's life: ``submitted`` → ``processing`` → ``succeed`` | ``failed``.

    ``UNKNOWN`` stands for a value the server added after this library was written; it is not
    terminal, so watchers keep polling such a task.
    """

    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEED = "succeed"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> TaskStatus:
        """Read a wire value; ``succeeded`` (new-standard APIs) reads as ``SUCCEED``."""
        exact = _WIRE_STATUSES.get(value) if type(value) is str else None
        if exact is not None:  # every poll's answer: one dict look-up
            return exact
        text = str(value).strip().lower() if value is not None else ""
        if text == "succeeded":
            return cls.SUCCEED
        try:
            status = cls(text)
        except ValueError:
            return cls.UNKNOWN
        return status

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCEED, TaskStatus.FAILED)

    def __str__(self) -> str:
        return self.value


_WIRE_STATUSES: dict[str, TaskStatus] = {
    **{status.value: status for status in TaskStatus if status is not TaskStatus.UNKNOWN},
    "succeeded": TaskStatus.SUCCEED,
}


@attrs.frozen
class Video:
    """One generated video. ``duration`` is seconds (a string on the wire)."""

    id: str
    url: str = ""
    duration: float | None = None
    watermark_url: str | None = None


@attrs.frozen
class Image:
    """One generated image."""

    index: int = 0
    url: str = ""
    watermark_url: str | None = None


@attrs.frozen
class ParentVideo:
    """The video an extend (or lip-sync) started from."""

    id: str
    url: str = ""
    duration: float | None = None


@attrs.frozen
class TaskInfo:
    """Creation parameters the server echoes back."""

    parent_video: ParentVideo | None = None
    external_task_id: str | None = None


@attrs.frozen
class TaskResult:
    videos: tuple[Video, ...] = ()
    images: tuple[Image, ...] = ()


@attrs.frozen
class WatermarkInfo:
    enabled: bool = False


@attrs.frozen
class Task:
    """A Kling task as last seen.

    ``kind`` is the endpoint family (``"video-extend"``, ...): the wire does not carry it, the
    client fills it in, so ``get_task(task)`` and ``watch(tasks)`` need no extra argument.
    ``created_at``/``updated_at`` are Unix milliseconds.
    """

    kind: str
    task_id: str
    task_status: TaskStatus
    raw_status: str = ""
    task_status_msg: str = ""
    task_info: TaskInfo = TaskInfo()
    task_result: TaskResult = TaskResult()
    watermark_info: WatermarkInfo | None = None
    final_unit_deduction: str | None = None
    created_at: int = 0
    updated_at: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.task_status.is_terminal

    @property
    def videos(self) -> tuple[Video, ...]:
        return self.task_result.videos

    @property
    def video(self) -> Video | None:
        """The first result video (for an extend: the whole continued video), if any."""
        return self.task_result.videos[0] if self.task_result.videos else None

    @property
    def external_task_id(self) -> str | None:
        return self.task_info.external_task_id

    @property
    def units_deducted(self) -> float | None:
        """``final_unit_deduction`` as a number, when the server reported one."""
        try:
            return float(self.final_unit_deduction) if self.final_unit_deduction else None
        except ValueError:
            return None


@attrs.frozen
class Face:
    """One face ``identify-face`` found: its id, a picture of it (URL) and when it is on
    screen (ms; the end runs a little past the real one, kling-api-more-kinds.md §7.1)."""

    face_id: str
    face_image: str = ""
    start_time: int = 0
    end_time: int = 0


@attrs.frozen
class FaceIdentification:
    """The answer of ``identify-face``: a ``session_id`` (valid 24 h) and the faces of the
    video, for :class:`~kling_async.requests.AdvancedLipSyncRequest`. Not a task."""

    session_id: str
    face_data: tuple[Face, ...] = ()
    final_unit_deduction: str | None = None

    @property
    def faces(self) -> tuple[Face, ...]:
        return self.face_data


@attrs.frozen
class Envelope:
    """``{code, message, request_id, data}``: every JSON answer of the task API."""

    code: int
    message: str = ""
    request_id: str = ""
    data: Any = None


@attrs.frozen
class StatusChange:
    """One observed transition of one task.

    ``previous`` is ``None`` on the first observation. ``at`` is the client clock's epoch
    seconds when the change was seen. A watch that gave up on a task yields a change with
    ``timed_out=True`` and the last status seen as ``current``; one that cannot follow a task
    (it does not exist, say) yields a change with the ``error``.
    """

    task_id: str
    previous: TaskStatus | None
    current: TaskStatus
    task: Task
    at: float
    timed_out: bool = False
    error: Exception | None = None

    @property
    def is_final(self) -> bool:
        """The watch will say nothing more about this task."""
        return self.timed_out or self.error is not None or self.current.is_terminal
