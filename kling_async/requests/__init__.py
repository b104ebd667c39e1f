"""Create requests for every task kind, validated when they are built, before any network I/O.

One module per family: :mod:`.video` (extend, text/image to video), :mod:`.more_video`
(multi-image to video, omni-video, effects, avatar, motion control), :mod:`.lip_sync` (legacy
and advanced lip-sync), :mod:`.images` (generation, try-on, expansion, multi-image to image).
Every class knows its ``kind``; :data:`REQUEST_TYPES` maps each kind to its class.
"""

from __future__ import annotations

import typing
from typing import Union

from ._common import ASPECT_RATIOS, CAMERA_TYPES, IMAGE_ASPECT_RATIOS
from ._validators import MAX_PROMPT
from .images import (
    ImageExpandRequest,
    ImageGenerationRequest,
    MultiImageToImageRequest,
    SubjectImage,
    VirtualTryOnRequest,
)
from .lip_sync import AdvancedLipSyncRequest, FaceChoice, LipSyncInput, LipSyncRequest
from .more_video import (
    AvatarRequest,
    EffectInput,
    EffectsRequest,
    Element,
    MotionControlRequest,
    MultiImage,
    MultiImageToVideoRequest,
)
from .omni import OmniImage, OmniShot, OmniVideo, OmniVideoRequest
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
    "AdvancedLipSyncRequest",
    "AvatarRequest",
    "CameraConfig",
    "CameraControl",
    "CreateRequest",
    "DynamicMask",
    "EffectInput",
    "EffectsRequest",
    "Element",
    "FaceChoice",
    "ImageExpandRequest",
    "ImageGenerationRequest",
    "ImageToVideoRequest",
    "LipSyncInput",
    "LipSyncRequest",
    "MotionControlRequest",
    "MultiImage",
    "MultiImageToImageRequest",
    "MultiImageToVideoRequest",
    "OmniImage",
    "OmniShot",
    "OmniVideo",
    "OmniVideoRequest",
    "SubjectImage",
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
    MultiImageToVideoRequest,
    OmniVideoRequest,
    EffectsRequest,
    ImageExpandRequest,
    MultiImageToImageRequest,
    AdvancedLipSyncRequest,
    AvatarRequest,
    MotionControlRequest,
]

REQUEST_TYPES: dict[str, type[CreateRequest]] = {
    cls.kind: cls for cls in typing.get_args(CreateRequest)
}

NESTED_TYPES: tuple[type, ...] = (
    CameraControl,
    CameraConfig,
    DynamicMask,
    Trajectory,
    LipSyncInput,
    MultiImage,
    EffectInput,
    Element,
    OmniImage,
    OmniVideo,
    OmniShot,
    SubjectImage,
    FaceChoice,
)
"""The objects requests nest (what batch rows and flags give as JSON objects)."""
