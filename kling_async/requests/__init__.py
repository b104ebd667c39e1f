"""Create requests for every task kind, validated when they are built, before any network I/O.

One module per family: :mod:`.video` (extend, text/image to video), :mod:`.more_video`
(multi-image to video, omni-video, effects, avatar, motion control), :mod:`.lip_sync` (legacy
and advanced lip-sync), :mod:`.images` (generation, try-on, expansion, multi-image to image).
Every class knows its ``kind``; :data:`REQUEST_TYPES` maps each kind to its class.
"""

from __future__ import annotations

import typing
from typing import Union

from .._validators import MAX_PROMPT
from ._common import ASPECT_RATIOS, CAMERA_TYPES, IMAGE_ASPECT_RATIOS
from .images import ImageGenerationRequest, VirtualTryOnRequest
from .lip_sync import LipSyncInput, LipSyncRequest
from .video import (
    CameraConfig,
    CameraControl,
    DynamicMask,
    ImageToVideoRequest,
    TextToVideoRequest,
    Trajectory,
    VideoExtendRequest,
)

__all__ = [
    "ASPECT_RATIOS",
    "CAMERA_TYPES",
    "IMAGE_ASPECT_RATIOS",
    "MAX_PROMPT",
    "REQUEST_TYPES",
    "CameraConfig",
    "CameraControl",
    "CreateRequest",
    "DynamicMask",
    "ImageGenerationRequest",
    "ImageToVideoRequest",
    "LipSyncInput",
    "LipSyncRequest",
    "TextToVideoRequest",
    "Trajectory",
    "VideoExtendRequest",
    "VirtualTryOnRequest",
]

CreateRequest = Union[  # noqa: UP007 (a runtime alias; `|` of classes is fine on 3.10 too)
    VideoExtendRequest,
    TextToVideoRequest,
    ImageToVideoRequest,
    ImageGenerationRequest,
    LipSyncRequest,
    VirtualTryOnRequest,
]

REQUEST_TYPES: dict[str, type[CreateRequest]] = {
    cls.kind: cls for cls in typing.get_args(CreateRequest)
}
