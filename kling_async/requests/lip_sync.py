"""Create requests of the lip-sync kinds: the legacy ``lip-sync`` (kling-api.md §5.2) and
``advanced-lip-sync`` (kling-api-more-kinds.md §7.2), which syncs a face found by the
synchronous ``identify-face`` call (§7.1, :meth:`KlingClient.identify_face`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from ..errors import RequestValidationError
from ..models import WatermarkInfo
from ._common import to_float, to_items, watermark
from ._validators import (
    bounded_text,
    choice,
    http_url,
    image_source,
    number_in,
    opt_id,
    required_id,
)

__all__ = ["AdvancedLipSyncRequest", "FaceChoice", "LipSyncInput", "LipSyncRequest"]


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


# -- advanced-lip-sync (kling-api-more-kinds.md §7.2) ----------------------------------------

MIN_SOUND_MS = 2000  # the cropped sound lasts at least 2 s
_millis = number_in(0, 24 * 3600 * 1000, integer=True)
_volume = number_in(0.0, 2.0)


def _required_millis(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        raise RequestValidationError(attribute.name, "is required (milliseconds)")
    _millis(inst, attribute, value)


@attrs.frozen(kw_only=True)
class FaceChoice:
    """The sound for one face of an identified video (:meth:`KlingClient.identify_face`).

    ``audio_id`` (a TTS audio) xor ``sound_file`` (URL or raw base64, mp3/wav/m4a/aac, ≤ 5 MB,
    2–60 s); the sound is cropped to ``sound_start_time``..``sound_end_time`` (ms, ≥ 2 s) and
    placed at ``sound_insert_time`` (ms) in the video. Volumes are in [0, 2] (default 1).
    """

    face_id: str = attrs.field(validator=required_id)
    sound_start_time: int = attrs.field(validator=_required_millis)
    sound_end_time: int = attrs.field(validator=_required_millis)
    sound_insert_time: int = attrs.field(validator=_required_millis)
    audio_id: str | None = attrs.field(default=None, validator=opt_id)
    sound_file: str | None = attrs.field(default=None, validator=image_source)
    sound_volume: float | None = attrs.field(default=None, converter=to_float, validator=_volume)
    original_audio_volume: float | None = attrs.field(
        default=None, converter=to_float, validator=_volume
    )

    def __attrs_post_init__(self) -> None:
        if (self.audio_id is None) == (self.sound_file is None):
            raise RequestValidationError(
                "face_choose.audio_id", "give exactly one of audio_id, sound_file"
            )
        if self.sound_end_time - self.sound_start_time < MIN_SOUND_MS:
            raise RequestValidationError(
                "face_choose.sound_end_time",
                f"the cropped sound must last at least {MIN_SOUND_MS} ms after sound_start_time",
            )


def _one_face(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, FaceChoice) for v in value):
        raise RequestValidationError("face_choose", "must be a list of FaceChoice objects")
    if len(value) != 1:
        raise RequestValidationError("face_choose", f"takes one face for now, got {len(value)}")


def _as_faces(value: Any) -> Any:
    return to_items(FaceChoice, value, "face_choose")


@attrs.frozen(kw_only=True)
class AdvancedLipSyncRequest:
    """``POST /v1/videos/advanced-lip-sync``: make one face of an identified video speak.

    ``session_id`` comes from :meth:`KlingClient.identify_face` (valid 24 h) and each
    ``face_choose`` item names one of its ``face_id`` values (one face for now). The result
    shows the source in ``task_info.parent_video``.
    """

    kind: ClassVar[str] = "advanced-lip-sync"

    session_id: str = attrs.field(validator=required_id)
    face_choose: tuple[FaceChoice, ...] = attrs.field(converter=_as_faces, validator=_one_face)
    watermark_info: WatermarkInfo | None = attrs.field(default=None, converter=watermark)
    callback_url: str | None = attrs.field(default=None, validator=http_url)
    external_task_id: str | None = attrs.field(default=None, validator=opt_id)

    parent_video_id: ClassVar[None] = None
