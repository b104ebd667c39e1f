"""Create requests of the lip-sync kinds: the legacy ``lip-sync`` (kling-api.md §5.2) and
``advanced-lip-sync`` (kling-api-more-kinds.md §7.2), which syncs a face found by the
synchronous ``identify-face`` call (§7.1, :meth:`KlingClient.identify_face`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .._validators import (
    bounded_text,
    choice,
    http_url,
    image_source,
    number_in,
    opt_id,
)
from ..errors import RequestValidationError
from ._common import to_float

__all__ = ["LipSyncInput", "LipSyncRequest"]


# -- lip-sync --------------------------------------------------------------------------------


def _voice_speed(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    number_in(0.8, 2.0)(inst, attribute, value)
    if value is not None and round(value, 1) != value:
        raise RequestValidationError(attribute.name, "takes one decimal place (e.g. 1.2)")


@attrs.frozen(kw_only=True)
class LipSyncInput:
    """What to lip-sync: a Kling video (``video_id``) xor an uploaded one (``video_url``), to
    text (``mode="text2video"``: ``text`` ≤ 120 characters and a ``voice_id``) or to audio
    (``mode="audio2video"``: ``audio_type`` ``file`` with ``audio_file`` or ``url`` with
    ``audio_url``)."""

    mode: str = attrs.field(validator=choice(("text2video", "audio2video")))
    video_id: str | None = attrs.field(default=None, validator=opt_id)
    video_url: str | None = attrs.field(default=None, validator=http_url)
    text: str | None = attrs.field(default=None, validator=bounded_text(limit=120))
    voice_id: str | None = attrs.field(default=None, validator=opt_id)
    voice_language: str | None = attrs.field(default=None, validator=choice(("zh", "en")))
    voice_speed: float | None = attrs.field(
        default=None, converter=to_float, validator=_voice_speed
    )
    audio_type: str | None = attrs.field(default=None, validator=choice(("file", "url")))
    audio_file: str | None = attrs.field(default=None, validator=image_source)
    audio_url: str | None = attrs.field(default=None, validator=http_url)

    def __attrs_post_init__(self) -> None:
        if (self.video_id is None) == (self.video_url is None):
            raise RequestValidationError(
                "input.video_id", "give exactly one of video_id, video_url"
            )
        if self.mode == "text2video":
            for name in ("text", "voice_id"):
                if getattr(self, name) is None:
                    raise RequestValidationError(f"input.{name}", "is required for text2video")
        else:
            if self.audio_type is None:
                raise RequestValidationError("input.audio_type", "is required for audio2video")
            needed = "audio_file" if self.audio_type == "file" else "audio_url"
            if getattr(self, needed) is None:
                raise RequestValidationError(
                    f"input.{needed}", f"is required for audio_type {self.audio_type!r}"
                )


@attrs.frozen(kw_only=True)
class LipSyncRequest:
    """``POST /v1/videos/lip-sync``."""

    kind: ClassVar[str] = "lip-sync"

    input: LipSyncInput
    callback_url: str | None = attrs.field(default=None, validator=http_url)

    @property
    def parent_video_id(self) -> str | None:
        return self.input.video_id
