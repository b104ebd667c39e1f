"""Create requests, validated when they are built, before any network I/O.

Limits come from kling-api.md §3.1: prompts of at most 2500 characters, ``cfg_scale`` in
[0, 1], non-empty ids. A bad value raises :class:`RequestValidationError` naming the field.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
from yarl import URL

from .errors import RequestValidationError
from .models import Task, Video, WatermarkInfo

__all__ = ["MAX_PROMPT", "VideoExtendRequest"]

MAX_PROMPT = 2500


def _opt_id(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise RequestValidationError(
            attribute.name, f"must be a string, got {type(value).__name__}"
        )
    if not value.strip():
        raise RequestValidationError(attribute.name, "must not be empty")
    if value != value.strip():
        raise RequestValidationError(attribute.name, "must not start or end with white space")


def _id(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        raise RequestValidationError(attribute.name, "is required")
    _opt_id(inst, attribute, value)


def _prompt(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise RequestValidationError(
            attribute.name, f"must be a string, got {type(value).__name__}"
        )
    if len(value) > MAX_PROMPT:
        raise RequestValidationError(
            attribute.name, f"is {len(value)} characters; at most {MAX_PROMPT} are allowed"
        )


def _unit_interval(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestValidationError(
            attribute.name, f"must be a number, got {type(value).__name__}"
        )
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise RequestValidationError(attribute.name, f"must be in [0, 1], got {value!r}")


def _callback_url(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise RequestValidationError(
            attribute.name, f"must be a string, got {type(value).__name__}"
        )
    try:
        url = URL(value)
    except ValueError:
        raise RequestValidationError(attribute.name, "is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise RequestValidationError(attribute.name, "must be an absolute http(s) URL")


def _watermark(value: Any) -> WatermarkInfo | None:
    if value is None or isinstance(value, WatermarkInfo):
        return value
    if isinstance(value, bool):
        return WatermarkInfo(enabled=value)
    raise RequestValidationError("watermark", f"must be a bool, got {type(value).__name__}")


def _float_or_none(value: Any) -> Any:
    # ints are fine for cfg_scale; keep everything else for the validator to reject clearly.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@attrs.frozen(kw_only=True)
class VideoExtendRequest:
    """``POST /v1/videos/video-extend``: continue a video by 4–5 seconds.

    ``video_id`` is a *video* id (``task.video.id``), not a task id. ``parent_task_id`` is the
    task that produced that video: relays need it (as body ``task_id``) to route the sub-task;
    the official API does not take it, so the client sends it only to relays.
    """

    kind: ClassVar[str] = "video-extend"
    __wire_names__: ClassVar[dict[str, str]] = {"parent_task_id": "task_id"}

    video_id: str = attrs.field(validator=_id)
    parent_task_id: str | None = attrs.field(default=None, validator=_opt_id)
    prompt: str | None = attrs.field(default=None, validator=_prompt)
    negative_prompt: str | None = attrs.field(default=None, validator=_prompt)
    cfg_scale: float | None = attrs.field(
        default=None, converter=_float_or_none, validator=_unit_interval
    )
    callback_url: str | None = attrs.field(default=None, validator=_callback_url)
    external_task_id: str | None = attrs.field(default=None, validator=_opt_id)
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=_watermark)

    @classmethod
    def from_source(cls, source: str | Video | Task, **fields: Any) -> VideoExtendRequest:
        """Build from a video id, a :class:`Video`, or a finished :class:`Task`.

        A task gives both its first video's id and itself as the parent task.
        """
        if isinstance(source, Task):
            video = source.video
            if video is None:
                raise RequestValidationError(
                    "video_id",
                    f"task {source.task_id} has no result video "
                    f"(status {source.task_status.value}); extend a finished task",
                )
            fields.setdefault("parent_task_id", source.task_id)
            return cls(video_id=video.id, **fields)
        if isinstance(source, Video):
            return cls(video_id=source.id, **fields)
        return cls(video_id=source, **fields)
