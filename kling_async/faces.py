"""``identify-face`` (kling-api-more-kinds.md §7.1): the synchronous first step of an
advanced lip-sync. It makes no task: one POST answers with a ``session_id`` and the faces of
the video, which :class:`~kling_async.requests.AdvancedLipSyncRequest` then names.

The call is billed (the answer reports ``final_unit_deduction``) and has no id to look a lost
answer up by, so it is sent once: a failure is raised to the caller, never retried here, lest
one identification be paid twice.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from .errors import RequestValidationError
from .models import Envelope, FaceIdentification, Task, Video
from .requests._validators import http_url, opt_id
from .serde import structure_faces
from .transport import Timeouts

__all__ = ["IDENTIFY_FACE_PATH", "Poster", "identify_face"]

IDENTIFY_FACE_PATH = "/v1/videos/identify-face"


class Poster(Protocol):
    """What :func:`identify_face` needs: the transport's one request path."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Any = None,
        timeouts: Timeouts | None = None,
    ) -> Envelope: ...


@attrs.frozen(kw_only=True)
class _IdentifyFace:
    video_id: str | None = attrs.field(default=None, validator=opt_id)
    video_url: str | None = attrs.field(default=None, validator=http_url)

    def __attrs_post_init__(self) -> None:
        if (self.video_id is None) == (self.video_url is None):
            raise RequestValidationError("video_id", "give exactly one of video_id, video_url")


def identify_body(
    video: str | Video | Task | None = None,
    *,
    video_id: str | None = None,
    video_url: str | None = None,
) -> dict[str, str]:
    """The body: ``video_id`` (a Kling video: an id, a :class:`Video` or a finished
    :class:`Task`, ≤ 30 days old, ≤ 60 s) xor ``video_url`` (mp4/mov, 2–60 s, 720p/1080p).
    :class:`RequestValidationError` before any I/O otherwise. ``video_id=`` is another name
    for ``video``."""
    if video_id is not None:
        if video is not None:
            raise RequestValidationError("video_id", "given twice (video and video_id)")
        video = video_id
    if isinstance(video, Task):
        if video.video is None:
            raise RequestValidationError("video_id", f"task {video.task_id} has no result video")
        video = video.video
    checked = _IdentifyFace(
        video_id=video.id if isinstance(video, Video) else video, video_url=video_url
    )
    return {k: v for k, v in attrs.asdict(checked).items() if v is not None}


async def identify_face(
    transport: Poster,
    video: str | Video | Task | None = None,
    *,
    video_id: str | None = None,
    video_url: str | None = None,
    timeouts: Timeouts | None = None,
) -> FaceIdentification:
    """POST ``identify-face`` once and read its faces."""
    body = identify_body(video, video_id=video_id, video_url=video_url)
    envelope = await transport.request("POST", IDENTIFY_FACE_PATH, body=body, timeouts=timeouts)
    return structure_faces(envelope.data, request_id=envelope.request_id)
