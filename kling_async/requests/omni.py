"""The omni-video request (kling-api-more-kinds.md §3.1), and extending a video through it
(§3.3).

Only the legacy path ``POST /v1/videos/omni-video`` is built: it takes the same credentials,
envelope and per-kind query as every other kind here. The new-standard
``/omni-video/{kling-3.0-omni|kling-o1}`` paths (§3.2: API-key auth only, ``contents[]`` /
``settings`` / ``options`` bodies, ``data.id``/``outputs[]`` answers queried through ``/tasks``)
are a different API generation and are not modelled.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from ..errors import RequestValidationError
from ..models import Task, Video, WatermarkInfo
from ._common import ASPECT_RATIOS, count_in, optional_prompt, to_duration, to_items, watermark
from ._validators import (
    bounded_text,
    choice,
    http_url,
    image_source,
    number_in,
    opt_id,
    required_id,
)
from .more_video import Element, as_elements

__all__ = ["OmniImage", "OmniShot", "OmniVideo", "OmniVideoRequest"]

OMNI_MODELS = ("kling-video-o1", "kling-v3-omni")
OMNI_MODES = ("std", "pro", "4k")  # 4k: kling-v3-omni only, not with a reference video
OMNI_DURATIONS = tuple(str(s) for s in range(3, 16))  # "3".."15"; kling-video-o1: up to "10"
O1_LONGEST = 10
SHOT_DURATIONS = tuple(str(s) for s in range(1, 16))
MAX_SHOT_PROMPT = 512
NEXT_SHOT = "Based on <<<video_1>>>, generate the next shot"
PREVIOUS_SHOT = "Based on <<<video_1>>>, generate the previous shot"


def _required(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        raise RequestValidationError(attribute.name, "is required")


@attrs.frozen(kw_only=True)
class OmniImage:
    """A reference image; ``type`` ``first_frame``/``end_frame`` makes it a frame of the video
    (omit it for a plain reference, ``<<<image_1>>>`` in the prompt)."""

    image_url: str = attrs.field(validator=[required_id, image_source])
    type: str | None = attrs.field(default=None, validator=choice(("first_frame", "end_frame")))


@attrs.frozen(kw_only=True)
class OmniVideo:
    """The one reference video (mp4/mov, 3–10 s, or up to 15 s on kling-v3-omni):
    ``refer_type`` ``base`` (the default: the video to edit; the output is as long as it) or
    ``feature`` (a reference, how a video is extended: see
    :meth:`OmniVideoRequest.extension_of`)."""

    video_url: str = attrs.field(validator=[required_id, http_url])
    refer_type: str | None = attrs.field(default=None, validator=choice(("base", "feature")))
    keep_original_sound: str | None = attrs.field(default=None, validator=choice(("yes", "no")))


@attrs.frozen(kw_only=True)
class OmniShot:
    """One shot of a customised multi-shot video: its 1-based ``index``, ``prompt`` (≤ 512
    characters) and ``duration`` (whole seconds, ≥ 1; the shots add up to the video's)."""

    index: int = attrs.field(validator=number_in(1, 6, integer=True))
    prompt: str = attrs.field(validator=bounded_text(limit=MAX_SHOT_PROMPT, required=True))
    duration: str = attrs.field(converter=to_duration, validator=choice(SHOT_DURATIONS))


def _as_shots(value: Any) -> Any:
    return to_items(OmniShot, value, "multi_prompt")


def _as_images(value: Any) -> Any:
    return to_items(OmniImage, value, "image_list", "image_url")


def _as_videos(value: Any) -> Any:
    return to_items(OmniVideo, value, "video_list", "video_url")


@attrs.frozen(kw_only=True)
class OmniVideoRequest:
    """``POST /v1/videos/omni-video``: a video from a prompt and references (images,
    elements, one video), or an edit of a ``base`` video.

    Rules checked here (§3.1): a ``prompt`` unless ``multi_shot`` with ``shot_type``
    ``customize`` (then ``multi_prompt``, 1–6 shots adding up to ``duration``); images and
    elements together ≤ 7, ≤ 4 with a reference video; no end frame without a first frame;
    with a video: ``sound`` not ``on``, and a ``base`` video takes no frames; ``aspect_ratio``
    unless a first frame or a base video fixes it; ``duration`` ``"3"``–``"10"`` on
    kling-video-o1 (the default model), up to ``"15"`` on kling-v3-omni.
    """

    kind: ClassVar[str] = "omni-video"

    prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    model_name: str | None = attrs.field(default=None, validator=choice(OMNI_MODELS))
    multi_shot: bool | None = attrs.field(default=None)
    shot_type: str | None = attrs.field(
        default=None, validator=choice(("customize", "intelligence"))
    )
    multi_prompt: tuple[OmniShot, ...] | None = attrs.field(
        default=None, converter=_as_shots, validator=count_in(1, 6, OmniShot)
    )
    image_list: tuple[OmniImage, ...] | None = attrs.field(
        default=None,
        converter=_as_images,
        validator=count_in(1, 7, OmniImage),
    )
    element_list: tuple[Element, ...] | None = attrs.field(
        default=None, converter=as_elements, validator=count_in(1, 7, Element)
    )
    video_list: tuple[OmniVideo, ...] | None = attrs.field(
        default=None,
        converter=_as_videos,
        validator=count_in(1, 1, OmniVideo),
    )
    sound: str | None = attrs.field(default=None, validator=choice(("on", "off")))
    mode: str | None = attrs.field(default=None, validator=choice(OMNI_MODES))
    aspect_ratio: str | None = attrs.field(default=None, validator=choice(ASPECT_RATIOS))
    duration: str | None = attrs.field(
        default=None, converter=to_duration, validator=choice(OMNI_DURATIONS)
    )
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None

    @multi_shot.validator
    def _bool(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not isinstance(value, bool):
            raise RequestValidationError("multi_shot", "must be true or false")

    def __attrs_post_init__(self) -> None:
        self._check_prompt()
        self._check_references()
        v3 = self.model_name == "kling-v3-omni"
        if self.duration is not None and not v3 and int(self.duration) > O1_LONGEST:
            raise RequestValidationError(
                "duration", f"kling-video-o1 makes at most {O1_LONGEST} s; kling-v3-omni 15"
            )
        if self.mode == "4k" and (not v3 or self.video_list):
            raise RequestValidationError(
                "mode", "'4k' is for kling-v3-omni only, and not with a reference video"
            )

    def _check_prompt(self) -> None:
        if not self.multi_shot:
            if not (self.prompt or "").strip():
                raise RequestValidationError("prompt", "is required (multi_shot is off)")
            return
        if self.shot_type is None:
            raise RequestValidationError("shot_type", "is required when multi_shot is true")
        if self.shot_type == "intelligence":
            if not (self.prompt or "").strip():
                raise RequestValidationError("prompt", "is required for shot_type intelligence")
            return
        if not self.multi_prompt:
            raise RequestValidationError("multi_prompt", "is required for shot_type customize")
        total = int(self.duration or "5")
        given = sum(int(shot.duration) for shot in self.multi_prompt)
        if given != total:
            raise RequestValidationError(
                "multi_prompt", f"the shots last {given} s; they must add up to duration {total}"
            )

    def _check_references(self) -> None:
        images, elements = self.image_list or (), self.element_list or ()
        video = self.video_list[0] if self.video_list else None
        most = 4 if video is not None else 7
        if len(images) + len(elements) > most:
            raise RequestValidationError(
                "image_list",
                f"images and elements together: at most {most} "
                f"{'with' if video else 'without'} a reference video",
            )
        frames = {image.type for image in images if image.type is not None}
        if "end_frame" in frames and "first_frame" not in frames:
            raise RequestValidationError("image_list", "an end_frame needs a first_frame")
        base = video is not None and video.refer_type in (None, "base")
        if video is not None:
            if self.sound == "on":
                raise RequestValidationError("sound", "must be 'off' with a reference video")
            if base and frames:
                raise RequestValidationError(
                    "image_list", "a base video (to edit) takes no first or end frame"
                )
        if self.aspect_ratio is None and not base and "first_frame" not in frames:
            raise RequestValidationError(
                "aspect_ratio", "is required without a first frame or a base video"
            )

    @classmethod
    def extension_of(
        cls,
        source: str | Video | Task,
        *,
        previous: bool = False,
        keep_original_sound: bool | None = None,
        **fields: Any,
    ) -> OmniVideoRequest:
        """Extend a video the way the omni docs say (§3.3, FAQ "How to Extend a Video?"): the
        video as a ``feature`` reference and the prompt "Based on <<<video_1>>>, generate the
        next shot" (``previous=True``: the previous shot), unless ``prompt`` is given.

        ``source`` is the video's URL, a :class:`Video` or a finished :class:`Task` (its first
        video). The result is the new shot only (a separate video; inferred, the docs do not
        say), unlike ``video-extend``, whose result is the whole continued video.
        ``aspect_ratio`` is still required (a reference video fixes none).
        """
        if isinstance(source, Task):
            video = source.video
            if video is None:
                raise RequestValidationError(
                    "video_list", f"task {source.task_id} has no result video to extend"
                )
            source = video
        url = source.url if isinstance(source, Video) else source
        sound = None if keep_original_sound is None else ("yes" if keep_original_sound else "no")
        reference = OmniVideo(video_url=url, refer_type="feature", keep_original_sound=sound)
        fields.setdefault("prompt", PREVIOUS_SHOT if previous else NEXT_SHOT)
        return cls(video_list=(reference,), **fields)
