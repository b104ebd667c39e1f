"""The shortcuts of :class:`~kling_async.KlingClient`: one create method per task kind.

Each builds its request (validated before any I/O) and hands it to ``create``, the one create
path. They live apart from the façade so that it stays short; a class that has ``create`` gets
them all.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from .faces import identify_face
from .models import FaceIdentification, Task, Video
from .requests import (
    AdvancedLipSyncRequest,
    CreateRequest,
    FaceChoice,
    LipSyncInput,
    OmniVideoRequest,
    VideoExtendRequest,
)
from .requests.fields import build_request
from .transport import Timeouts, Transport

__all__ = ["Shortcuts"]


class Shortcuts(abc.ABC):
    """``extend_video``, ``text_to_video``, ``image_to_video``, ``generate_images``,
    ``lip_sync``, ``virtual_try_on``, ``multi_image_to_video``, ``omni_video``,
    ``extend_with_omni``, ``video_effects``, ``expand_image``, ``multi_image_to_image``,
    ``advanced_lip_sync``, ``avatar``, ``motion_control``: each creates one task of its kind.
    ``identify_face`` is the synchronous step before ``advanced_lip_sync``."""

    _transport: Transport  # the one request path, for the synchronous calls

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

    async def multi_image_to_video(
        self, image_list: Sequence[str | Mapping[str, Any]], prompt: str, **fields: Any
    ) -> Task:
        """Create a multi-image-to-video task of 1–4 subject images (URLs or raw base64);
        ``fields`` as :class:`MultiImageToVideoRequest`."""
        return await self._create_kind(
            "multi-image2video", image_list=image_list, prompt=prompt, **fields
        )

    async def omni_video(self, prompt: str | None = None, **fields: Any) -> Task:
        """Create an omni-video task (legacy ``/v1/videos/omni-video``); ``fields`` as
        :class:`OmniVideoRequest` (``image_list``, ``video_list``, ``multi_prompt``...)."""
        return await self._create_kind("omni-video", prompt=prompt, **fields)

    async def extend_with_omni(
        self, video: str | Video | Task, *, previous: bool = False, **fields: Any
    ) -> Task:
        """Continue ``video`` (its URL, a :class:`Video` or a finished :class:`Task`) with a
        new shot through omni-video (:meth:`OmniVideoRequest.extension_of`); the result is the
        new shot. ``aspect_ratio`` is required."""
        slot_timeout = fields.pop("slot_timeout", None)
        request = OmniVideoRequest.extension_of(video, previous=previous, **fields)
        return await self.create(request, slot_timeout=slot_timeout)

    async def video_effects(
        self, effect_scene: str, input: Mapping[str, Any], **fields: Any
    ) -> Task:
        """Create a video-effects task: ``effect_scene`` applied to ``input``
        (``{"image": ...}`` or ``{"images": [left, right]}``, or an :class:`EffectInput`)."""
        return await self._create_kind("effects", effect_scene=effect_scene, input=input, **fields)

    async def expand_image(self, image: str, **fields: Any) -> Task:
        """Create an image-expansion task; ``fields`` as :class:`ImageExpandRequest`
        (``up_expansion_ratio``... each in [0, 2], sides left out are 0)."""
        return await self._create_kind("image-expand", image=image, **fields)

    async def multi_image_to_image(
        self, subject_image_list: Sequence[str | Mapping[str, Any]], **fields: Any
    ) -> Task:
        """Create a multi-image-to-image task of 1–4 subjects; ``fields`` as
        :class:`MultiImageToImageRequest`."""
        return await self._create_kind(
            "multi-image2image", subject_image_list=subject_image_list, **fields
        )

    async def identify_face(
        self,
        video: str | Video | Task | None = None,
        *,
        video_id: str | None = None,
        video_url: str | None = None,
        timeouts: Timeouts | None = None,
    ) -> FaceIdentification:
        """The faces of a video, for :meth:`advanced_lip_sync` (synchronous, no task).

        ``video`` is a Kling video (id, :class:`Video` or finished :class:`Task`); or give
        ``video_id=`` or ``video_url=``. Billed and sent once, never retried (see
        :mod:`kling_async.faces`).
        """
        return await identify_face(
            self._transport, video, video_id=video_id, video_url=video_url, timeouts=timeouts
        )

    async def advanced_lip_sync(
        self,
        session: str | FaceIdentification,
        face_choose: Sequence[FaceChoice | Mapping[str, Any]],
        **fields: Any,
    ) -> Task:
        """Create an advanced lip-sync task for a face of ``session`` (an
        :meth:`identify_face` answer or its ``session_id``); ``face_choose`` as
        :class:`AdvancedLipSyncRequest` (one :class:`FaceChoice`)."""
        session_id = session.session_id if isinstance(session, FaceIdentification) else session
        return await self._create_kind(
            AdvancedLipSyncRequest.kind, session_id=session_id, face_choose=face_choose, **fields
        )

    async def avatar(self, image: str, **fields: Any) -> Task:
        """Create an avatar task: ``image`` speaking ``audio_id`` xor ``sound_file``;
        ``fields`` as :class:`AvatarRequest`."""
        return await self._create_kind("avatar", image=image, **fields)

    async def motion_control(
        self,
        image_url: str,
        video_url: str,
        *,
        character_orientation: str,
        mode: str,
        **fields: Any,
    ) -> Task:
        """Create a motion-control task: the character of ``image_url`` moving as in
        ``video_url``; ``fields`` as :class:`MotionControlRequest`."""
        return await self._create_kind(
            "motion-control",
            image_url=image_url,
            video_url=video_url,
            character_orientation=character_orientation,
            mode=mode,
            **fields,
        )

    async def _create_kind(self, kind: str, **fields: Any) -> Task:
        slot_timeout = fields.pop("slot_timeout", None)
        return await self.create(build_request(kind, fields), slot_timeout=slot_timeout)
