"""Create-body validators of the later kinds, from the *server* rules of
kling-api-more-kinds.md (not the client's request classes, so a client bug is not mirrored):
multi-image2video (§2), omni-video (§3.1), effects (§4), image-expand (§5), multi-image2image
(§6), advanced-lip-sync (§7.2), avatar (§8), motion-control (§9.1).

As in :mod:`._bodies`: unknown fields are ignored, the first bad field is a 1201 naming it,
and each returns the :class:`Plan` of what the task will make.

Documented rules of these sections not modelled, and why:

- bytes of images, videos and sounds (format, size, pixels, aspect, fps, resolution): nothing
  is fetched or decoded; a video URL not served by the emulator is taken as a 5 s video, and a
  sound's length is unknown (avatar results last 5 s; lip-sync sounds are not checked against
  their audio's length, §7.2);
- the effect scene list (§4: 152 or 219 names, with retirements) and the element library
  (§3.1, §9.1): any scene name and any integer ``element_id`` are accepted, so the element
  count rules tied to frames (≤ 3 with a first frame, none on O1 with both frames) and
  "no video-character elements with a reference video" are not checked;
- O1's "more than 2 images: no first/end frame" and the multi-shot ⟂ frames rule, which the
  docs later lifted for kling-v3-omni (§3.1): model-specific and in flux;
- TTS ``audio_id`` values (§7.2, §8): any id is accepted, as if it were a ≤ 30-day TTS audio;
- advanced-lip-sync's answer shows ``external_task_id`` in ``task_info`` and can be queried by
  it like every kind here; the docs list neither (§7.2, §15), and the client does not rely on
  either (its Kind row gives it no generated id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kling_async.testing._bodies import (
    FOREIGN_VIDEO_SECONDS,
    IMAGE_ASPECT_RATIOS,
    MAX_IMAGES,
    MAX_PROMPT,
    MODES,
    VIDEO_ASPECT_RATIOS,
    VIDEO_DURATIONS,
    CreateContext,
    Plan,
)
from kling_async.testing._replies import ApiError
from kling_async.testing._tasks import VideoRecord
from kling_async.testing._validation import (
    optional_choice,
    optional_id,
    optional_image,
    optional_int_in,
    optional_number_in,
    optional_object,
    optional_text,
    optional_url,
    present,
    required_id,
    required_text,
)

__all__ = [
    "validate_advanced_lip_sync",
    "validate_avatar",
    "validate_effects",
    "validate_image_expand",
    "validate_motion_control",
    "validate_multi_image2image",
    "validate_multi_image2video",
    "validate_omni_video",
]

EFFECT_MODELS = ("kling-v1", "kling-v1-5", "kling-v1-6")
OMNI_MODELS = ("kling-video-o1", "kling-v3-omni")
OMNI_SECONDS = {"kling-video-o1": (3, 10), "kling-v3-omni": (3, 15)}
MAX_SHOT_PROMPT = 512
MOTION_MODELS = ("kling-v2-6", "kling-v3")
MAX_EXPANSION = 2.0
MAX_EXPANDED_AREA = 3.0
SOUND_SECONDS = 2.0  # a lip-sync's cropped sound lasts at least 2 s


def _invalid(message: str) -> ApiError:
    return ApiError.invalid(message)


def _list(body: Mapping[str, Any], name: str, low: int, high: int) -> list[dict[str, Any]]:
    """A list of ``low`` to ``high`` objects (absent: empty, which ``low`` may refuse)."""
    items = body.get(name)
    if items is None:
        items = []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _invalid(f"{name} must be a list of objects")
    if not low <= len(items) <= high:
        raise _invalid(f"{name} takes {low} to {high} items, got {len(items)}")
    return items


def _required_image(body: Mapping[str, Any], name: str, *, where: str = "") -> str:
    image = optional_image(body, name, where=where)
    if image is None:
        raise _invalid(f"{where}{name} is required")
    return image


def _video_seconds(ctx: CreateContext, url: str, field: str) -> float:
    """How long the video at ``url`` is: one of the emulator's own (1201 if gone), else the
    length assumed for a video from elsewhere."""
    record = ctx.video_at(url, field)
    return FOREIGN_VIDEO_SECONDS if record is None else record.duration


def validate_multi_image2video(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§2: ``image_list`` of 1-4 ``{image}`` (the docs give no minimum; one is taken), a
    required prompt, model ``kling-v1-6`` only; one video of the requested duration."""
    optional_choice(body, "model_name", ("kling-v1-6",))
    for number, item in enumerate(_list(body, "image_list", 1, 4)):
        _required_image(item, "image", where=f"image_list[{number}].")
    required_text(body, "prompt", limit=MAX_PROMPT)
    optional_text(body, "negative_prompt", limit=MAX_PROMPT)
    optional_choice(body, "mode", MODES)
    optional_choice(body, "aspect_ratio", VIDEO_ASPECT_RATIOS)
    return Plan(seconds=float(optional_choice(body, "duration", VIDEO_DURATIONS) or "5"))


def validate_omni_video(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§3.1 (legacy path): the prompt / multi-shot rules, the reference counts (images and
    elements ≤ 7, ≤ 4 with a video; one video), frames (no end frame alone; none with a base
    video), ``sound`` off with a video, ``aspect_ratio`` unless a first frame or a base video
    fixes it, ``duration`` 3-10 (kling-video-o1) or 3-15 (kling-v3-omni). A base video's edit
    is as long as the video; otherwise the result is a new video of ``duration`` (also when a
    ``feature`` video is extended, §3.3: the new shot only, an inferred reading)."""
    model = optional_choice(body, "model_name", OMNI_MODELS) or OMNI_MODELS[0]
    low, high = OMNI_SECONDS[model]
    text = optional_choice(body, "duration", tuple(str(s) for s in range(low, high + 1)))
    seconds = int(text or "5")
    multi_shot = body.get("multi_shot", False)
    if not isinstance(multi_shot, bool):
        raise _invalid("multi_shot must be true or false")
    shot_type = optional_choice(body, "shot_type", ("customize", "intelligence"))
    prompt = optional_text(body, "prompt", limit=MAX_PROMPT)
    if not multi_shot or shot_type == "intelligence":
        if not prompt:
            raise _invalid("prompt is required")
    elif shot_type is None:
        raise _invalid("shot_type is required when multi_shot is true")
    else:
        shots = _list(body, "multi_prompt", 1, 6)
        total = 0
        for number, shot in enumerate(shots):
            where = f"multi_prompt[{number}]."
            optional_int_in(shot, "index", 1, 6, where=where)
            required_text(shot, "prompt", limit=MAX_SHOT_PROMPT, where=where)
            length = optional_choice(shot, "duration", tuple(str(s) for s in range(1, high + 1)))
            if length is None:
                raise _invalid(f"{where}duration is required")
            total += int(length)
        if total != seconds:
            raise _invalid(f"multi_prompt durations add up to {total}, not duration {seconds}")
    images = _list(body, "image_list", 0, 7)
    frames = set()
    for number, item in enumerate(images):
        where = f"image_list[{number}]."
        _required_image(item, "image_url", where=where)
        kind = optional_choice(item, "type", ("first_frame", "end_frame"), where=where)
        if kind is not None:
            frames.add(kind)
    elements = _list(body, "element_list", 0, 7)
    for number, item in enumerate(elements):
        element = item.get("element_id")
        if isinstance(element, bool) or not isinstance(element, int):
            raise _invalid(f"element_list[{number}].element_id must be an integer")
    videos = _list(body, "video_list", 0, 1)
    sound = optional_choice(body, "sound", ("on", "off"))
    optional_choice(body, "mode", (*MODES, "4k") if model == "kling-v3-omni" else MODES)
    aspect = optional_choice(body, "aspect_ratio", VIDEO_ASPECT_RATIOS)
    base_seconds = None
    if videos:
        video = videos[0]
        url = optional_url(video, "video_url", where="video_list[0].")
        if url is None:
            raise _invalid("video_list[0].video_url is required")
        refer = optional_choice(video, "refer_type", ("base", "feature"), where="video_list[0].")
        optional_choice(video, "keep_original_sound", ("yes", "no"), where="video_list[0].")
        video_seconds = _video_seconds(ctx, url, "video_list[0].video_url")
        if not low <= video_seconds <= high:
            raise _invalid(
                f"video_list[0]: the video is {video_seconds:g}s; {model} takes {low}-{high}s"
            )
        if sound == "on":
            raise _invalid("sound must be off with a reference video")
        if refer in (None, "base"):
            base_seconds = video_seconds
            if frames:
                raise _invalid("a base video takes no first_frame or end_frame")
    if len(images) + len(elements) > (4 if videos else 7):
        raise _invalid("image_list and element_list: at most 4 with a video, 7 without")
    if "end_frame" in frames and "first_frame" not in frames:
        raise _invalid("image_list: an end_frame needs a first_frame")
    if aspect is None and base_seconds is None and "first_frame" not in frames:
        raise _invalid("aspect_ratio is required without a first frame or a base video")
    return Plan(seconds=float(base_seconds if base_seconds is not None else seconds))


def validate_effects(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§4, both generations: a required ``effect_scene`` (any name: the list changes, 152 then
    219 values), ``input.image`` (single) xor ``input.images`` (two: dual-character). The older
    ``input.duration`` ("5" for a single image, "5"/"10" dual), ``input.model_name`` and
    ``input.mode`` are accepted; the result is one video of that duration (default 5 s)."""
    required_id(body, "effect_scene")
    given = optional_object(body, "input")
    if given is None:
        raise _invalid("input is required")
    image = optional_image(given, "image", where="input.")
    images = given.get("images")
    if images is not None:
        if not isinstance(images, list) or len(images) != 2:
            raise _invalid("input.images must hold 2 images (left, right)")
        for number in range(2):
            _required_image({"image": images[number]}, "image", where=f"input.images[{number}].")
    if (image is None) == (images is None):
        raise _invalid("input: give exactly one of image, images")
    single = image is not None
    duration = optional_choice(
        given, "duration", ("5",) if single else VIDEO_DURATIONS, where="input."
    )
    optional_choice(given, "model_name", EFFECT_MODELS, where="input.")
    optional_choice(given, "mode", MODES, where="input.")
    return Plan(seconds=float(duration or "5"))


def validate_image_expand(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§5: ``image`` and all four ``*_expansion_ratio`` (required, as the newest docs say;
    each in [0, 2], of the height for up/down, the width for left/right), the new area at most
    3 times the original's (``(1+up+down)*(1+left+right) <= 3``, the docs' wording read as a
    formula), ``n`` 1-9 images."""
    _required_image(body, "image")
    ratios = {}
    for side in ("up", "down", "left", "right"):
        name = f"{side}_expansion_ratio"
        if not present(body, name):
            raise _invalid(f"{name} is required")
        ratios[side] = optional_number_in(body, name, 0.0, MAX_EXPANSION) or 0.0
    optional_text(body, "prompt", limit=MAX_PROMPT)
    count = optional_int_in(body, "n", 1, MAX_IMAGES)
    area = (1 + ratios["up"] + ratios["down"]) * (1 + ratios["left"] + ratios["right"])
    if area > MAX_EXPANDED_AREA + 1e-9:
        raise _invalid(f"the expanded image would be {area:.3g} times the original; at most 3")
    return Plan(images=count or 1)


def validate_multi_image2image(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§6: ``subject_image_list`` of 1-4 ``{subject_image}`` (required, as the newest docs
    say), optional ``scene_image``/``style_image``, model ``kling-v2``/``kling-v2-1``, ``n``
    1-9 images; a ``negative_prompt`` (sent by the docs' own example) is ignored."""
    optional_choice(body, "model_name", ("kling-v2", "kling-v2-1"))
    optional_text(body, "prompt", limit=MAX_PROMPT)
    for number, item in enumerate(_list(body, "subject_image_list", 1, 4)):
        _required_image(item, "subject_image", where=f"subject_image_list[{number}].")
    optional_image(body, "scene_image")
    optional_image(body, "style_image")
    count = optional_int_in(body, "n", 1, MAX_IMAGES)
    optional_choice(body, "aspect_ratio", IMAGE_ASPECT_RATIOS)
    return Plan(images=count or 1)


def validate_advanced_lip_sync(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§7.2: an open ``session_id`` (from identify-face, 24 h) and ``face_choose`` with one
    face of it: ``audio_id`` xor ``sound_file``, the crop ``sound_start_time`` ..
    ``sound_end_time`` (ms) at least 2 s, ``sound_insert_time`` inside the video, volumes in
    [0, 2]. The result is as long as the video, which ``task_info.parent_video`` shows."""
    session_id = required_id(body, "session_id")
    if ctx.session is None:
        raise _invalid("session_id does not name a face identification")
    session = ctx.session(session_id)
    (face,) = _list(body, "face_choose", 1, 1)
    where = "face_choose[0]."
    face_id = required_id(face, "face_id", where=where)
    if face_id not in session.face_ids:
        raise _invalid(f"{where}face_id is not a face of this session")
    audio_id = optional_id(face, "audio_id", where=where)
    sound_file = optional_image(face, "sound_file", where=where)
    if (audio_id is None) == (sound_file is None):
        raise _invalid(f"{where}give exactly one of audio_id, sound_file")
    times = {}
    for name in ("sound_start_time", "sound_end_time", "sound_insert_time"):
        value = optional_int_in(face, name, 0, 3_600_000, where=where)
        if value is None:
            raise _invalid(f"{where}{name} is required")
        times[name] = value
    if times["sound_end_time"] - times["sound_start_time"] < SOUND_SECONDS * 1000:
        raise _invalid(f"{where}the cropped sound must last at least 2 s")
    if times["sound_insert_time"] / 1000 + SOUND_SECONDS > session.seconds:
        raise _invalid(f"{where}sound_insert_time leaves less than 2 s of the video")
    optional_number_in(face, "sound_volume", 0.0, 2.0, where=where)
    optional_number_in(face, "original_audio_volume", 0.0, 2.0, where=where)
    parent: VideoRecord | None = session.video
    return Plan(parent=parent, seconds=session.seconds)


def validate_avatar(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§8: a required ``image``, ``audio_id`` xor ``sound_file``, no model. The sound's length
    is not known to the emulator: the result is a video of 5 s."""
    _required_image(body, "image")
    audio_id = optional_id(body, "audio_id")
    sound_file = optional_image(body, "sound_file")
    if (audio_id is None) == (sound_file is None):
        raise _invalid("give exactly one of audio_id, sound_file")
    optional_text(body, "prompt", limit=MAX_PROMPT)
    optional_choice(body, "mode", MODES)
    return Plan(seconds=FOREIGN_VIDEO_SECONDS)


def validate_motion_control(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """§9.1: required ``image_url``, ``video_url``, ``character_orientation`` and ``mode``;
    at most one element. The output follows the reference video (3-30 s with orientation
    ``video``, 3-10 s with ``image``; an emulator video's own length, else 5 s assumed)."""
    optional_choice(body, "model_name", MOTION_MODELS)
    optional_text(body, "prompt", limit=MAX_PROMPT)
    _required_image(body, "image_url")
    url = optional_url(body, "video_url")
    if url is None:
        raise _invalid("video_url is required")
    orientation = optional_choice(body, "character_orientation", ("image", "video"))
    if orientation is None:
        raise _invalid("character_orientation is required")
    if optional_choice(body, "mode", MODES) is None:
        raise _invalid("mode is required")
    _list(body, "element_list", 0, 1)
    optional_choice(body, "keep_original_sound", ("yes", "no"))
    seconds = _video_seconds(ctx, url, "video_url")
    longest = 30.0 if orientation == "video" else 10.0
    if not 3.0 <= seconds <= longest:
        raise _invalid(
            f"video_url: the video is {seconds:g}s; orientation {orientation} takes 3-{longest:g}s"
        )
    return Plan(seconds=seconds)
