"""Task objects as the wire shows them (kling-api.md 2, 3.3, 4.1, 6.1), built from the spec.

Deliberately independent of the client's models and serde, so a client bug is not mirrored
here. Timestamps are Unix milliseconds; durations and unit counts are strings.
"""

from __future__ import annotations

from typing import Any

from kling_async.testing._tasks import (
    FAILED,
    SUBMITTED,
    SUCCEED,
    ImageRecord,
    Phase,
    TaskRecord,
    VideoRecord,
)

__all__ = [
    "IMAGE_MEDIA_DIR",
    "VIDEO_MEDIA_DIR",
    "created_object",
    "image_media_path",
    "media_path",
    "task_object",
]

VIDEO_MEDIA_DIR = "/media/videos/"
IMAGE_MEDIA_DIR = "/media/images/"


def millis(seconds: float) -> int:
    return round(seconds * 1000)


def number_text(value: float) -> str:
    """``5.0`` -> ``"5"``, ``9.4567`` -> ``"9.457"``: how the API writes seconds and units."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def media_path(video_id: str, *, watermarked: bool = False) -> str:
    """Where the emulator serves a video's bytes (see the media route)."""
    return f"{VIDEO_MEDIA_DIR}{video_id}{'.wm' if watermarked else ''}.mp4"


def image_media_path(image_id: str, *, watermarked: bool = False) -> str:
    """Where the emulator serves an image's bytes (see the media route)."""
    return f"{IMAGE_MEDIA_DIR}{image_id}{'.wm' if watermarked else ''}.png"


def _image(image: ImageRecord, base_url: str, *, watermark: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "index": image.index,
        "url": base_url + image_media_path(image.image_id),
    }
    if watermark:
        shown["watermark_url"] = base_url + image_media_path(image.image_id, watermarked=True)
    return shown


def _video(video: VideoRecord, base_url: str, *, watermark: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": video.video_id,
        "url": base_url + media_path(video.video_id),
        "duration": number_text(video.duration),
    }
    if watermark:
        shown["watermark_url"] = base_url + media_path(video.video_id, watermarked=True)
    return shown


def _result(task: TaskRecord, phase: Phase, base_url: str) -> dict[str, Any]:
    """``task_result``: what the task produced once it has succeeded, else an empty list;
    ``videos`` or ``images`` as the kind makes (kling-api.md 2)."""
    if task.output == "images":
        made_images = task.images if phase.status == SUCCEED else ()
        return {"images": [_image(i, base_url, watermark=task.watermark) for i in made_images]}
    made = task.result if phase.status == SUCCEED else None
    videos = [] if made is None else [_video(made, base_url, watermark=task.watermark)]
    return {"videos": videos}


def task_object(task: TaskRecord, phase: Phase, base_url: str) -> dict[str, Any]:
    """The task in ``phase``, as a query, a list item and a callback body show it."""
    info: dict[str, Any] = {}
    if task.external_task_id is not None:
        info["external_task_id"] = task.external_task_id
    if task.parent is not None:
        info["parent_video"] = _video(task.parent, base_url, watermark=False)
    return {
        "task_id": task.task_id,
        "task_status": phase.status,
        "task_status_msg": (task.failure or "") if phase.status == FAILED else "",
        "task_info": info,
        "task_result": _result(task, phase, base_url),
        "watermark_info": {"enabled": task.watermark},
        "final_unit_deduction": number_text(task.units),
        "created_at": millis(task.created_at),
        "updated_at": millis(phase.at),
    }


def created_object(task: TaskRecord) -> dict[str, Any]:
    """The create answer's ``data``: no status message, no result (kling-api.md 3.3)."""
    info = {} if task.external_task_id is None else {"external_task_id": task.external_task_id}
    return {
        "task_id": task.task_id,
        "task_status": SUBMITTED,
        "task_info": info,
        "created_at": millis(task.created_at),
        "updated_at": millis(task.created_at),
    }
