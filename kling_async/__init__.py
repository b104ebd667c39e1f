"""kling_async: an asyncio-native client for the Kling AI video API.

Start with :class:`KlingClient`; test against :class:`kling_async.testing.KlingEmulator`.
"""

from __future__ import annotations

import logging

from ._version import __version__
from .auth import AccessKeyPair, StaticKey
from .batch import Batch
from .cadence import Cadence
from .chain import Chain, ChainStep
from .client import DEFAULT_BASE_URL, KlingClient
from .clock import Clock, FakeClock, ScaledClock, SystemClock
from .coordination import Coordinator, LocalCoordinator
from .errors import (
    AccountError,
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConcurrencyLimitError,
    ConfigurationError,
    DatabaseError,
    DownloadError,
    InsufficientBalanceError,
    InvalidRequestError,
    KlingError,
    NotFoundError,
    PermissionDeniedError,
    PolicyError,
    RateLimitError,
    RequestTimeoutError,
    RequestValidationError,
    ResponseFormatError,
    ServerError,
    SlotTimeoutError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from .journal import (
    Journal,
    JournalClosedError,
    JournalError,
    JournalFormatError,
    SharedJournal,
)
from .kinds import KINDS, Kind
from .media import MediaPolicy
from .models import (
    Image,
    ParentVideo,
    StatusChange,
    Task,
    TaskInfo,
    TaskResult,
    TaskStatus,
    Video,
    WatermarkInfo,
)
from .outcomes import BatchReport, Outcome, Progress
from .requests import (
    ASPECT_RATIOS,
    CAMERA_TYPES,
    IMAGE_ASPECT_RATIOS,
    MAX_PROMPT,
    REQUEST_TYPES,
    CameraConfig,
    CameraControl,
    CreateRequest,
    DynamicMask,
    ImageGenerationRequest,
    ImageToVideoRequest,
    LipSyncInput,
    LipSyncRequest,
    TextToVideoRequest,
    Trajectory,
    VideoExtendRequest,
    VirtualTryOnRequest,
)
from .retry import RetryEvent, RetryPolicy
from .transport import Timeouts

logging.getLogger("kling_async").addHandler(logging.NullHandler())

__all__ = [
    "JournalFormatError",
    "JournalError",
    "JournalClosedError",
    "Journal",
    "ChainStep",
    "Chain",
    "Cadence",
    "Progress",
    "Outcome",
    "BatchReport",
    "Batch",
    "DEFAULT_BASE_URL",
    "KINDS",
    "APIError",
    "AccessKeyPair",
    "AccountError",
    "AmbiguousSubmitError",
    "AuthenticationError",
    "ClientClosedError",
    "Clock",
    "ConcurrencyLimitError",
    "Coordinator",
    "LocalCoordinator",
    "ConfigurationError",
    "DatabaseError",
    "DownloadError",
    "FakeClock",
    "Image",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "Kind",
    "KlingClient",
    "KlingError",
    "MediaPolicy",
    "NotFoundError",
    "ParentVideo",
    "PermissionDeniedError",
    "PolicyError",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestValidationError",
    "ResponseFormatError",
    "RetryEvent",
    "RetryPolicy",
    "ScaledClock",
    "ServerError",
    "SharedJournal",
    "SlotTimeoutError",
    "StaticKey",
    "StatusChange",
    "SystemClock",
    "Task",
    "TaskFailedError",
    "TaskInfo",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "Timeouts",
    "TransportError",
    "Video",
    "VideoExtendRequest",
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
    "VirtualTryOnRequest",
    "ASPECT_RATIOS",
    "CAMERA_TYPES",
    "IMAGE_ASPECT_RATIOS",
    "MAX_PROMPT",
    "REQUEST_TYPES",
    "WatermarkInfo",
    "__version__",
]
