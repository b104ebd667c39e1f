"""The shortcuts of :class:`~kling_async.KlingClient`: one create method per task kind.

Each builds its request (validated before any I/O) and hands it to ``create``, the one create
path. They live apart from the façade so that it stays short; a class that has ``create`` gets
them all.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from ._fields import build_request
from .models import Task, Video
from .requests import CreateRequest, LipSyncInput, VideoExtendRequest
from .transport import Timeouts

__all__ = ["Shortcuts"]


class Shortcuts(abc.ABC):
    """``extend_video``, ``text_to_video``, ``image_to_video``, ``generate_images``,
    ``lip_sync``, ``virtual_try_on``: each creates one task of its kind."""

    @abc.abstractmethod
    async def create(
        self,
        request: CreateRequest,
        *,
        timeouts: Timeouts | None = None,
        retry_throttled: bool = True,
        slot_timeout: float | None = None,
    ) -> Task:
        """Create the task ``request`` describes (:meth:`KlingClient.create`)."""

    async def extend_video(
        self,
        video: str | Video | Task,
        *,
        parent_task_id: str | None = None,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        callback_url: str | None = None,
        external_task_id: str | None = None,
        watermark: bool | None = None,
        timeouts: Timeouts | None = None,
        slot_timeout: float | None = None,
    ) -> Task:
        """Create a video-extend task (4–5 more seconds of ``video``) and return it (``submitted``).

        ``video`` is a video id, a :class:`Video`, or a finished :class:`Task` (whose first video
        is extended and which becomes the parent task). Raises :class:`RequestValidationError`
        before any I/O for bad input, an :class:`APIError` if refused, or
        :class:`AmbiguousSubmitError` if the answer was lost and the task could not be found.

        While the account's slots are all held by this client's tasks, the create waits for
        one to end (in order); ``slot_timeout`` (default: the client's) bounds that wait with
        :class:`SlotTimeoutError` (nothing is sent).
        """
        fields: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "cfg_scale": cfg_scale,
            "callback_url": callback_url,
            "external_task_id": external_task_id,
            "watermark_info": watermark,
        }
        if parent_task_id is not None:
            fields["parent_task_id"] = parent_task_id
        request = VideoExtendRequest.from_source(video, **fields)
        return await self.create(request, timeouts=timeouts, slot_timeout=slot_timeout)

    # The shortcuts build their request as ``extend_many`` builds a mapping: nested objects
    # (``camera_control``, ``dynamic_masks``, a lip-sync ``input``) may be mappings, and an
    # unknown field or key is a RequestValidationError naming it, before any I/O. Each takes
    # ``slot_timeout=`` as extend_video does.

    async def text_to_video(self, prompt: str, **fields: Any) -> Task:
        """Create a text-to-video task; ``fields`` as :class:`TextToVideoRequest`
        (``camera_control`` a :class:`CameraControl` or a mapping of its fields)."""
        return await self._create_kind("text2video", prompt=prompt, **fields)

    async def image_to_video(self, image: str | None = None, **fields: Any) -> Task:
        """Create an image-to-video task; ``fields`` as :class:`ImageToVideoRequest`
        (``dynamic_masks`` :class:`DynamicMask` objects or mappings)."""
        return await self._create_kind("image2video", image=image, **fields)

    async def generate_images(self, prompt: str, **fields: Any) -> Task:
        """Create an image-generation task; ``fields`` as :class:`ImageGenerationRequest`."""
        return await self._create_kind("image-generation", prompt=prompt, **fields)

    async def lip_sync(self, input: LipSyncInput | Mapping[str, Any], **fields: Any) -> Task:
        """Create a lip-sync task for ``input`` (a :class:`LipSyncInput` or a mapping of its
        fields)."""
        return await self._create_kind("lip-sync", input=input, **fields)

    async def virtual_try_on(self, human_image: str, **fields: Any) -> Task:
        """Create a virtual try-on task; ``fields`` as :class:`VirtualTryOnRequest`."""
        return await self._create_kind("virtual-try-on", human_image=human_image, **fields)

    async def _create_kind(self, kind: str, **fields: Any) -> Task:
        slot_timeout = fields.pop("slot_timeout", None)
        return await self.create(build_request(kind, fields), slot_timeout=slot_timeout)
