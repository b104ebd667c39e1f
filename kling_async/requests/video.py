"""Create requests of the first video kinds: video-extend, text2video, image2video (with their
camera controls and masks), validated when they are built, before any network I/O.

Field rules come from kling-api.md §3.1 and §5.2. A bad value raises
:class:`RequestValidationError` naming the field. Each class knows its ``kind``; those whose
task starts from an existing video know its id (``parent_video_id``), which is how a lost create
is found again where the kind takes no ``external_task_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from ..errors import RequestValidationError
from ..models import Task, Video, WatermarkInfo
from ._common import (
    ASPECT_RATIOS,
    CAMERA_TYPES,
    DURATIONS,
    MODES,
    optional_prompt,
    to_duration,
    to_float,
    unit_interval,
    watermark,
)
from ._validators import (
    bounded_text,
    choice,
    http_url,
    image_source,
    number_in,
    opt_id,
    required_id,
)

__all__ = [
    "CameraConfig",
    "CameraControl",
    "DynamicMask",
    "ImageToVideoRequest",
    "TextToVideoRequest",
    "Trajectory",
    "VideoExtendRequest",
]


# -- video-extend ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class VideoExtendRequest:
    """``POST /v1/videos/video-extend``: continue a video by 4–5 seconds.

    ``video_id`` is a *video* id (``task.video.id``), not a task id. ``parent_task_id`` is the
    task that produced that video: relays need it (as body ``task_id``) to route the sub-task;
    the official API does not take it, so the client sends it only to relays.
    """

    kind: ClassVar[str] = "video-extend"
    __wire_names__: ClassVar[dict[str, str]] = {"parent_task_id": "task_id"}

    video_id: str = attrs.field(validator=required_id)
    parent_task_id: str | None = attrs.field(default=None, validator=opt_id)
    prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    negative_prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    cfg_scale: float | None = attrs.field(default=None, converter=to_float, validator=unit_interval)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)

    @property
    def parent_video_id(self) -> str:
        return self.video_id

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


# -- camera and masks ------------------------------------------------------------------------

_axis = number_in(-10.0, 10.0)


@attrs.frozen(kw_only=True)
class CameraConfig:
    """One camera movement for ``type="simple"``: exactly one axis non-zero, each in [-10, 10]."""

    horizontal: float = attrs.field(default=0.0, converter=to_float, validator=_axis)
    vertical: float = attrs.field(default=0.0, converter=to_float, validator=_axis)
    pan: float = attrs.field(default=0.0, converter=to_float, validator=_axis)
    tilt: float = attrs.field(default=0.0, converter=to_float, validator=_axis)
    roll: float = attrs.field(default=0.0, converter=to_float, validator=_axis)
    zoom: float = attrs.field(default=0.0, converter=to_float, validator=_axis)

    def __attrs_post_init__(self) -> None:
        moving = [a.name for a in attrs.fields(CameraConfig) if getattr(self, a.name) != 0]
        if len(moving) != 1:
            raise RequestValidationError(
                "camera_control.config",
                f"exactly one of horizontal, vertical, pan, tilt, roll, zoom must be non-zero "
                f"(got {', '.join(moving) or 'none'})",
            )


@attrs.frozen(kw_only=True)
class CameraControl:
    """A preset camera move, or ``simple`` with a :class:`CameraConfig`."""

    type: str = attrs.field(validator=choice(CAMERA_TYPES))
    config: CameraConfig | None = None

    def __attrs_post_init__(self) -> None:
        if (self.type == "simple") != (self.config is not None):
            raise RequestValidationError(
                "camera_control.config", "is required for type 'simple' and only for it"
            )


@attrs.frozen
class Trajectory:
    x: int = attrs.field(validator=number_in(-1e9, 1e9, integer=True))
    y: int = attrs.field(validator=number_in(-1e9, 1e9, integer=True))


def _tuple_of_points(points: Iterable[Trajectory]) -> tuple[Trajectory, ...]:
    # A typed converter: with a bare ``tuple`` type checkers see the argument as Iterable[_T].
    return tuple(points)


def _trajectories(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise RequestValidationError("dynamic_masks.trajectories", "needs at least one point")


@attrs.frozen(kw_only=True)
class DynamicMask:
    """An area of the image (``mask``: URL or raw base64) and the path it should move along."""

    mask: str = attrs.field(validator=[required_id, image_source])
    trajectories: tuple[Trajectory, ...] = attrs.field(
        converter=_tuple_of_points, validator=_trajectories
    )


def _masks(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not 1 <= len(value) <= 6:
        raise RequestValidationError(attribute.name, f"takes 1 to 6 groups, got {len(value)}")


def _opt_tuple(value: Any) -> Any:
    return None if value is None else tuple(value)


# -- text2video / image2video ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TextToVideoRequest:
    """``POST /v1/videos/text2video``. ``duration`` is ``"5"`` or ``"10"`` (seconds)."""

    kind: ClassVar[str] = "text2video"

    prompt: str = attrs.field(validator=bounded_text(required=True))
    model_name: str | None = attrs.field(default=None, validator=opt_id)
    negative_prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    cfg_scale: float | None = attrs.field(default=None, converter=to_float, validator=unit_interval)
    mode: str | None = attrs.field(default=None, validator=choice(MODES))
    camera_control: CameraControl | None = None
    aspect_ratio: str | None = attrs.field(default=None, validator=choice(ASPECT_RATIOS))
    duration: str | None = attrs.field(
        default=None, converter=to_duration, validator=choice(DURATIONS)
    )
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None


@attrs.frozen(kw_only=True)
class ImageToVideoRequest:
    """``POST /v1/videos/image2video``: animate ``image`` (and/or end on ``image_tail``).

    Images are http(s) URLs or raw base64 without a ``data:`` prefix. A tail image, masks and a
    camera control are mutually exclusive.
    """

    kind: ClassVar[str] = "image2video"

    image: str | None = attrs.field(default=None, validator=image_source)
    image_tail: str | None = attrs.field(default=None, validator=image_source)
    prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    model_name: str | None = attrs.field(default=None, validator=opt_id)
    negative_prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    cfg_scale: float | None = attrs.field(default=None, converter=to_float, validator=unit_interval)
    mode: str | None = attrs.field(default=None, validator=choice(MODES))
    static_mask: str | None = attrs.field(default=None, validator=image_source)
    dynamic_masks: tuple[DynamicMask, ...] | None = attrs.field(
        default=None, converter=_opt_tuple, validator=_masks
    )
    camera_control: CameraControl | None = None
    duration: str | None = attrs.field(
        default=None, converter=to_duration, validator=choice(DURATIONS)
    )
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None

    def __attrs_post_init__(self) -> None:
        if self.image is None and self.image_tail is None:
            raise RequestValidationError("image", "image or image_tail is required")
        used = [
            name
            for name, present in (
                ("image_tail", self.image_tail is not None and self.image is not None),
                ("masks", self.static_mask is not None or self.dynamic_masks is not None),
                ("camera_control", self.camera_control is not None),
            )
            if present
        ]
        if len(used) > 1:
            raise RequestValidationError(
                used[1], f"cannot be combined with {used[0]} (they are mutually exclusive)"
            )
