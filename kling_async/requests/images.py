"""Create requests of the image kinds (kling-api.md §5.2, kling-api-more-kinds.md §5, §6):
image generation, virtual try-on, image expansion, multi-image to image. Results are in
``task.task_result.images``; each holds ``n`` of the account's image slots (one for try-on).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from ..errors import RequestValidationError
from ..models import WatermarkInfo
from ._common import (
    IMAGE_ASPECT_RATIOS,
    count_in,
    optional_prompt,
    to_float,
    to_items,
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
    "ImageExpandRequest",
    "ImageGenerationRequest",
    "MultiImageToImageRequest",
    "SubjectImage",
    "VirtualTryOnRequest",
]


# -- images/generations, kolors-virtual-try-on ------------------------------------------


@attrs.frozen(kw_only=True)
class ImageGenerationRequest:
    """``POST /v1/images/generations``: ``n`` (1–9) images; results in ``task.task_result.images``.

    ``negative_prompt`` cannot be combined with a reference ``image``.
    """

    kind: ClassVar[str] = "image-generation"

    prompt: str = attrs.field(validator=bounded_text(required=True))
    model_name: str | None = attrs.field(default=None, validator=opt_id)
    negative_prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    image: str | None = attrs.field(default=None, validator=image_source)
    image_reference: str | None = attrs.field(default=None, validator=choice(("subject", "face")))
    image_fidelity: float | None = attrs.field(
        default=None, converter=to_float, validator=unit_interval
    )
    human_fidelity: float | None = attrs.field(
        default=None, converter=to_float, validator=unit_interval
    )
    resolution: str | None = attrs.field(default=None, validator=choice(("1k", "2k")))
    n: int | None = attrs.field(default=None, validator=number_in(1, 9, integer=True))
    aspect_ratio: str | None = attrs.field(default=None, validator=choice(IMAGE_ASPECT_RATIOS))
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None

    def __attrs_post_init__(self) -> None:
        if self.negative_prompt is not None and self.image is not None:
            raise RequestValidationError("negative_prompt", "cannot be used with image")
        if self.image_reference is not None and self.image is None:
            raise RequestValidationError("image_reference", "needs an image")


@attrs.frozen(kw_only=True)
class VirtualTryOnRequest:
    """``POST /v1/images/kolors-virtual-try-on``: dress ``human_image`` in ``cloth_image``."""

    kind: ClassVar[str] = "virtual-try-on"

    human_image: str = attrs.field(validator=[required_id, image_source])
    cloth_image: str | None = attrs.field(default=None, validator=image_source)
    model_name: str | None = attrs.field(
        default=None,
        validator=choice(("kolors-virtual-try-on-v1", "kolors-virtual-try-on-v1-5")),
    )
    callback_url: str | None = attrs.field(default=None, validator=http_url)

    parent_video_id: ClassVar[None] = None


# -- editing/expand (kling-api-more-kinds.md §5) ---------------------------------------------

_ratio = number_in(0.0, 2.0)
MAX_EXPANDED_AREA = 3.0


def _side(value: Any) -> Any:
    # Each side is required on the wire; 0 (no growth) is what a side left out means.
    return 0.0 if value is None else to_float(value)


@attrs.frozen(kw_only=True)
class ImageExpandRequest:
    """``POST /v1/images/editing/expand``: outpaint ``image`` by a ratio of its height (up,
    down) and width (left, right) per side, each in [0, 2], into ``n`` (1–9) images.

    The new image may be at most 3 times the original's area, read as
    ``(1 + up + down) * (1 + left + right) <= 3`` (the docs' wording; the formula is inferred).
    Sides left out are sent as 0: the API wants all four (``__always_sent__``).
    """

    kind: ClassVar[str] = "image-expand"
    __always_sent__: ClassVar[frozenset[str]] = frozenset(
        f"{side}_expansion_ratio" for side in ("up", "down", "left", "right")
    )

    image: str = attrs.field(validator=[required_id, image_source])
    up_expansion_ratio: float = attrs.field(default=0.0, converter=_side, validator=_ratio)
    down_expansion_ratio: float = attrs.field(default=0.0, converter=_side, validator=_ratio)
    left_expansion_ratio: float = attrs.field(default=0.0, converter=_side, validator=_ratio)
    right_expansion_ratio: float = attrs.field(default=0.0, converter=_side, validator=_ratio)
    prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    n: int | None = attrs.field(default=None, validator=number_in(1, 9, integer=True))
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None

    def __attrs_post_init__(self) -> None:
        tall = 1 + self.up_expansion_ratio + self.down_expansion_ratio
        wide = 1 + self.left_expansion_ratio + self.right_expansion_ratio
        if tall * wide > MAX_EXPANDED_AREA + 1e-9:
            raise RequestValidationError(
                "up_expansion_ratio",
                f"the expanded image would be {tall * wide:.3g} times the original's area; "
                f"at most {MAX_EXPANDED_AREA:g}",
            )


# -- multi-image2image (kling-api-more-kinds.md §6) ------------------------------------------


@attrs.frozen(kw_only=True)
class SubjectImage:
    """One subject of a multi-image-to-image task (URL or raw base64, not cropped by Kling)."""

    subject_image: str = attrs.field(validator=[required_id, image_source])


def _subjects(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        raise RequestValidationError(attribute.name, "is required")
    count_in(1, 4, SubjectImage)(inst, attribute, value)


def _as_subjects(value: Any) -> Any:
    return to_items(SubjectImage, value, "subject_image_list", "subject_image")


@attrs.frozen(kw_only=True)
class MultiImageToImageRequest:
    """``POST /v1/images/multi-image2image``: ``n`` (1–9) images of 1–4 subjects, optionally
    in a ``scene_image`` and a ``style_image``. ``subject_image_list`` items are
    :class:`SubjectImage` objects, mappings or plain image strings (required: the newest docs
    say so; the older ones did not)."""

    kind: ClassVar[str] = "multi-image2image"

    subject_image_list: tuple[SubjectImage, ...] = attrs.field(
        converter=_as_subjects, validator=_subjects
    )
    prompt: str | None = attrs.field(default=None, validator=optional_prompt)
    model_name: str | None = attrs.field(default=None, validator=choice(("kling-v2", "kling-v2-1")))
    scene_image: str | None = attrs.field(default=None, validator=image_source)
    style_image: str | None = attrs.field(default=None, validator=image_source)
    n: int | None = attrs.field(default=None, validator=number_in(1, 9, integer=True))
    aspect_ratio: str | None = attrs.field(default=None, validator=choice(IMAGE_ASPECT_RATIOS))
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None
