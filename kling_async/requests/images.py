"""Create requests of the image kinds (kling-api.md §5.2, kling-api-more-kinds.md §5, §6):
image generation, virtual try-on, image expansion, multi-image to image. Results are in
``task.task_result.images``; each holds ``n`` of the account's image slots (one for try-on).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from .._validators import (
    bounded_text,
    choice,
    http_url,
    image_source,
    number_in,
    opt_id,
    required_id,
)
from ..errors import RequestValidationError
from ._common import IMAGE_ASPECT_RATIOS, optional_prompt, to_float, unit_interval

__all__ = ["ImageGenerationRequest", "VirtualTryOnRequest"]


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
