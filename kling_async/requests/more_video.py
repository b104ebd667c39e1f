"""Create requests of the later video kinds: multi-image to video (kling-api-more-kinds.md §2),
video effects (§4), avatar (§8) and motion control (§9.1), all on the legacy ``/v1/videos``
paths. Each validates when it is built, before any network I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..errors import RequestValidationError
from ..models import WatermarkInfo
from ._common import (
    ASPECT_RATIOS,
    DURATIONS,
    MODES,
    count_in,
    optional_prompt,
    to_duration,
    to_items,
    watermark,
)
from ._validators import bounded_text, choice, http_url, image_source, opt_id, required_id

__all__ = [
    "AvatarRequest",
    "EffectInput",
    "EffectsRequest",
    "Element",
    "MotionControlRequest",
    "MultiImage",
    "MultiImageToVideoRequest",
]

MULTI_IMAGE_MODELS = ("kling-v1-6",)
EFFECT_MODELS = ("kling-v1", "kling-v1-5", "kling-v1-6")
MOTION_MODELS = ("kling-v2-6", "kling-v3")
YES_NO = ("yes", "no")


def _required(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        raise RequestValidationError(attribute.name, "is required")


# -- multi-image2video (§2) ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MultiImage:
    """One reference image of a multi-image task: an http(s) URL or raw base64."""

    image: str = attrs.field(validator=[required_id, image_source])


def _as_multi_images(value: Any) -> Any:
    return to_items(MultiImage, value, "image_list", "image")


@attrs.frozen(kw_only=True)
class MultiImageToVideoRequest:
    """``POST /v1/videos/multi-image2video``: a video of the subjects of 1–4 images.

    ``image_list`` items are :class:`MultiImage` objects, mappings or plain image strings. The
    API does not crop: give pre-cut subjects. At least one image (the docs state no minimum;
    relays say 1–4).
    """

    kind: ClassVar[str] = "multi-image2video"

    image_list: tuple[MultiImage, ...] = attrs.field(
        converter=_as_multi_images, validator=[_required, count_in(1, 4, MultiImage)]
    )
    prompt: str = attrs.field(validator=bounded_text(required=True))
    model_name: str | None = attrs.field(default=None, validator=choice(MULTI_IMAGE_MODELS))
    negative_prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    mode: str | None = attrs.field(default=None, validator=choice(MODES))
    duration: str | None = attrs.field(
        default=None, converter=to_duration, validator=choice(DURATIONS)
    )
    aspect_ratio: str | None = attrs.field(default=None, validator=choice(ASPECT_RATIOS))
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None


# -- effects (§4) ----------------------------------------------------------------------------


def _two_images(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != 2:
        raise RequestValidationError("input.images", "takes exactly 2 images (left, right)")
    for image in value:
        image_source(inst, attribute, image)


def _opt_strings(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@attrs.frozen(kw_only=True)
class EffectInput:
    """An effect's ``input``: one ``image`` (single-image scenes) xor two ``images`` (left and
    right portrait of the dual-character scenes).

    ``duration``, ``model_name`` and ``mode`` belong to the older generation of the API (§4.1:
    a single image takes ``"5"`` only; dual scenes ``"5"``/``"10"`` and a model/mode); the
    newest (§4.2) takes none of them, so leave them out unless your account wants them.
    """

    image: str | None = attrs.field(default=None, validator=image_source)
    images: tuple[str, ...] | None = attrs.field(
        default=None, converter=_opt_strings, validator=_two_images
    )
    duration: str | None = attrs.field(
        default=None, converter=to_duration, validator=choice(DURATIONS)
    )
    model_name: str | None = attrs.field(default=None, validator=choice(EFFECT_MODELS))
    mode: str | None = attrs.field(default=None, validator=choice(MODES))

    def __attrs_post_init__(self) -> None:
        if (self.image is None) == (self.images is None):
            raise RequestValidationError(
                "input.image", "give exactly one of image (single-image scene), images (dual)"
            )
        if self.image is not None:
            if self.duration not in (None, "5"):
                raise RequestValidationError("input.duration", "is '5' for a single image")
            for name in ("model_name", "mode"):
                if getattr(self, name) is not None:
                    raise RequestValidationError(
                        f"input.{name}", "is only for dual-character scenes (images)"
                    )


def _as_effect_input(value: Any) -> Any:
    # A mapping of EffectInput's fields reads as one (unknown keys named), like the shortcuts.
    if not isinstance(value, Mapping):
        return value
    try:
        return EffectInput(**value)
    except TypeError as exc:
        raise RequestValidationError("input", str(exc)) from None


def _effect_input(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, EffectInput):
        raise RequestValidationError("input", "must be an EffectInput or a mapping of its fields")


@attrs.frozen(kw_only=True)
class EffectsRequest:
    """``POST /v1/videos/effects``: a preset effect (``effect_scene``, e.g. ``squish``,
    ``hug_pro``) applied to ``input``.

    The scene list changes often (152 values on the older page, 219 on the newest, with
    retirements), so any non-empty name is sent and Kling judges it. No watermark field.
    """

    kind: ClassVar[str] = "effects"

    effect_scene: str = attrs.field(validator=required_id)
    input: EffectInput = attrs.field(converter=_as_effect_input, validator=_effect_input)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None


# -- avatar (§8) -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AvatarRequest:
    """``POST /v1/videos/avatar/image2video``: a talking avatar of ``image``, to a TTS
    ``audio_id`` xor a ``sound_file`` (URL or raw base64; mp3/wav/m4a/aac, 2–300 s). There is
    no ``model_name``."""

    kind: ClassVar[str] = "avatar"

    image: str = attrs.field(validator=[required_id, image_source])
    audio_id: str | None = attrs.field(default=None, validator=opt_id)
    sound_file: str | None = attrs.field(default=None, validator=image_source)
    prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    mode: str | None = attrs.field(default=None, validator=choice(MODES))
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None

    def __attrs_post_init__(self) -> None:
        if (self.audio_id is None) == (self.sound_file is None):
            raise RequestValidationError("audio_id", "give exactly one of audio_id, sound_file")


# -- motion-control (§9.1) -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Element:
    """An element of the account's element library, by id."""

    element_id: int = attrs.field()

    @element_id.validator
    def _positive(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RequestValidationError("element_id", "must be a non-negative integer")


def as_elements(value: Any) -> Any:
    """A converter: :class:`Element` objects or mappings, as a tuple."""
    return to_items(Element, value, "element_list")


@attrs.frozen(kw_only=True)
class MotionControlRequest:
    """``POST /v1/videos/motion-control``: the character of ``image_url`` moving as the one in
    ``video_url`` does (3–30 s). There is no ``duration``: the output follows the video and is
    billed by its length. ``character_orientation`` (``image``/``video``) and ``mode`` are
    required; ``element_list`` takes at most one element."""

    kind: ClassVar[str] = "motion-control"

    image_url: str = attrs.field(validator=[required_id, image_source])
    video_url: str = attrs.field(validator=[required_id, http_url])
    character_orientation: str = attrs.field(validator=[_required, choice(("image", "video"))])
    mode: str = attrs.field(validator=[_required, choice(MODES)])
    model_name: str | None = attrs.field(default=None, validator=choice(MOTION_MODELS))
    prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    element_list: tuple[Element, ...] | None = attrs.field(
        default=None, converter=as_elements, validator=count_in(1, 1, Element)
    )
    keep_original_sound: str | None = attrs.field(default=None, validator=choice(YES_NO))
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None
