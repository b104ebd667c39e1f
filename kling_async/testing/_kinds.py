"""The task kinds the emulator serves, as one declarative table.

Each row names the kind (what the client calls ``Task.kind`` and ``emu.tasks[...].kind``
records), its official collection path (mounted again under ``/kling`` for the relay flavour,
which makes the relay's generic poller ``GET /kling/v1/{action}/{action2}/{task_id}``), its
body validator (:mod:`._bodies`), what it produces (``videos`` or ``images``), whether it takes
an ``external_task_id``, which resource-pack pool it draws slots and units from (video, image
or try-on, kling-api.md 7.1), how many slots it holds, which fields carry images (checked by
the emulator's ``check_images`` knob, kling-api.md 5.2), and its typical run time
(kling-api.md 8.11, ComfyUI's estimates), which the emulator's default :class:`Durations` use.
"""

from __future__ import annotations

from typing import Literal

import attrs

from kling_async.testing._bodies import (
    CreateContext,
    Flavour,
    Plan,
    Validator,
    validate_extend,
    validate_image2video,
    validate_image_generation,
    validate_lip_sync,
    validate_text2video,
    validate_try_on,
)
from kling_async.testing._bodies_more import (
    validate_advanced_lip_sync,
    validate_avatar,
    validate_effects,
    validate_image_expand,
    validate_motion_control,
    validate_multi_image2image,
    validate_multi_image2video,
    validate_omni_video,
)

__all__ = ["KINDS", "CreateContext", "Flavour", "Kind", "Output", "Pack", "Plan"]

Output = Literal["videos", "images"]
Pack = Literal["video", "image", "try-on"]


def _pack_of(kind: Kind) -> Pack:
    """The pool a row draws from unless it says: image kinds the image pack, others video."""
    return "image" if kind.output == "images" else "video"


@attrs.frozen
class Kind:
    """One row of the table.

    ``validate`` is ``None`` for a kind that can be queried but not created here.
    ``takes_external_task_id=False``: an ``external_task_id`` in the body is ignored, like any
    unknown field. ``slots_per_image``: the task holds one slot per image it makes (image
    generation, kling-api.md 7.1); otherwise one slot. ``pack``: the resource-pack type whose
    slots and units it uses (kling-api.md 7.1: video, image and try-on are counted apart;
    default from ``output``). ``image_fields``: body fields holding an image (a dotted name
    for a nested one), for the image checks.
    """

    name: str
    path: str  # official path of the collection, e.g. "/v1/videos/video-extend"
    validate: Validator | None = None
    output: Output = "videos"
    takes_external_task_id: bool = True
    slots_per_image: bool = False
    typical_seconds: float = 320.0
    pack: Pack = attrs.field(default=attrs.Factory(_pack_of, takes_self=True))
    image_fields: tuple[str, ...] = ()

    def slots(self, plan: Plan) -> int:
        return plan.images if self.slots_per_image else 1


KINDS: tuple[Kind, ...] = (
    Kind("text2video", "/v1/videos/text2video", validate_text2video, typical_seconds=319.0),
    Kind(
        "image2video",
        "/v1/videos/image2video",
        validate_image2video,
        typical_seconds=164.0,
        image_fields=("image", "image_tail"),
    ),
    Kind("video-extend", "/v1/videos/video-extend", validate_extend, typical_seconds=320.0),
    Kind(
        "lip-sync",
        "/v1/videos/lip-sync",
        validate_lip_sync,
        takes_external_task_id=False,
        typical_seconds=455.0,
    ),
    Kind(
        "image-generation",
        "/v1/images/generations",
        validate_image_generation,
        output="images",
        slots_per_image=True,
        typical_seconds=32.0,
        image_fields=("image",),
    ),
    Kind(
        "virtual-try-on",
        "/v1/images/kolors-virtual-try-on",
        validate_try_on,
        output="images",
        takes_external_task_id=False,
        typical_seconds=19.0,
        pack="try-on",
        image_fields=("human_image", "cloth_image"),
    ),
    # kling-api-more-kinds.md §2-§9 (validators in _bodies_more); run times from §14, else the
    # nearest documented kind's.
    Kind("multi-image2video", "/v1/videos/multi-image2video", validate_multi_image2video),
    Kind("omni-video", "/v1/videos/omni-video", validate_omni_video),
    Kind("effects", "/v1/videos/effects", validate_effects, typical_seconds=320.0),
    Kind(
        "image-expand",
        "/v1/images/editing/expand",
        validate_image_expand,
        output="images",
        slots_per_image=True,  # inferred from the image rule (§13)
        typical_seconds=32.0,
    ),
    Kind(
        "multi-image2image",
        "/v1/images/multi-image2image",
        validate_multi_image2image,
        output="images",
        slots_per_image=True,  # inferred from the image rule (§13)
        typical_seconds=32.0,
    ),
    Kind(
        "advanced-lip-sync",
        "/v1/videos/advanced-lip-sync",
        validate_advanced_lip_sync,
        typical_seconds=120.0,
    ),
    Kind("avatar", "/v1/videos/avatar/image2video", validate_avatar, typical_seconds=600.0),
    Kind("motion-control", "/v1/videos/motion-control", validate_motion_control),
)
