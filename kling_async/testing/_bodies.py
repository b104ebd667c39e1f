"""Create-body validators, one per kind, following the *server* rules of kling-api.md 3.1/3.2
and 5.2 (not the client's request classes, so a client bug is not mirrored here).

A validator checks every field it knows (unknown fields are ignored, as the official API is
presumed to), raises a 1201 :class:`ApiError` naming the first bad field, and returns the
:class:`Plan` of what the task will make. Field checks come first, cross-field rules after.
A ``model_name`` that is a string but not a listed model is a 1203/404, the error table's
"resource does not exist (e.g. model)" (kling-api.md 7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from kling_async.testing._faces import FaceSession
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
    optional_unit_interval,
    optional_url,
    present,
    required_id,
    required_text,
)

__all__ = [
    "CreateContext",
    "Flavour",
    "Plan",
    "Validator",
    "validate_extend",
    "validate_image2video",
    "validate_image_generation",
    "validate_lip_sync",
    "validate_text2video",
    "validate_try_on",
]

Flavour = Literal["official", "relay"]

MAX_PROMPT = 2500
MAX_TOTAL_SECONDS = 180.0  # an extended video must stay within 3 minutes
EXTENSION_SECONDS = (4.0, 5.0)  # one extension adds 4-5 s

T2V_MODELS = (
    "kling-v1",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
)
I2V_MODELS = (*T2V_MODELS, "kling-v1-5", "kling-v2-1")
DEFAULT_MODEL = "kling-v1"
# kling-api.md 3.1: the source must come from these kinds, made by these models (newest EN doc).
EXTENDABLE_KINDS = ("text2video", "image2video", "video-extend")
EXTENDABLE_MODELS = ("kling-v1", "kling-v1-5", "kling-v1-6")
MODES = ("std", "pro")
VIDEO_ASPECT_RATIOS = ("16:9", "9:16", "1:1")
VIDEO_DURATIONS = ("5", "10")  # strings, not numbers
CAMERA_TYPES = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
CAMERA_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")
CAMERA_RANGE = 10.0
MAX_DYNAMIC_MASKS = 6

IMAGE_ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9")
IMAGE_REFERENCES = ("subject", "face")
RESOLUTIONS = ("1k", "2k")
MAX_IMAGES = 9

LIP_SYNC_MODES = ("text2video", "audio2video")
MAX_LIP_SYNC_TEXT = 120
VOICE_LANGUAGES = ("zh", "en")
VOICE_SPEED = (0.8, 2.0)
AUDIO_TYPES = ("file", "url")
LIP_SYNC_SECONDS = (2.0, 60.0)  # URL: 2-60 s; an id: at most 60 s
FOREIGN_VIDEO_SECONDS = 5.0  # the length assumed for a video_url the emulator did not make

TRY_ON_MODELS = ("kolors-virtual-try-on-v1", "kolors-virtual-try-on-v1-5")


@attrs.frozen
class CreateContext:
    """What a body validator may consult besides the body."""

    flavour: Flavour
    require_relay_parent: bool
    # An available (generated, unpurged) video by id, else a 1201 naming the field given.
    video: Callable[[str, str], VideoRecord]
    # The emulator video a media URL serves (1201 if gone); None for any other URL.
    video_at: Callable[[str, str], VideoRecord | None]
    # The open identify-face session by id, else a 1201 (advanced-lip-sync, _bodies_more).
    session: Callable[[str], FaceSession] | None = None


@attrs.frozen
class Plan:
    """What a valid create will make: a video of ``seconds`` (plus a seeded draw of up to
    ``jitter``), continuing ``parent`` if it has one, made by ``model``; or ``images``
    images."""

    parent: VideoRecord | None = None
    seconds: float = 0.0
    jitter: float = 0.0
    images: int = 0
    model: str = DEFAULT_MODEL


Validator = Callable[[Mapping[str, Any], CreateContext], Plan]


def _invalid(message: str) -> ApiError:
    return ApiError.invalid(message)


# -- video-extend (kling-api.md 3.1, 3.2) ------------------------------------------------------


def validate_extend(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """``video_id`` of an available video short enough to extend; the relay flavour also wants
    the ``task_id`` that produced it. The result is the whole video, 4-5 s longer, made by
    the source's model (kling-api.md 3.1: no ``model_name``, the model is inherited).

    kling-api.md 3.1: the source must come from text2video, image2video or a previous extend,
    and (newest EN doc) be made by V1.0, V1.5 or V1.6; anything else is a 1201/400 (CometAPI
    answers HTTP 400, 3.2; the code is undocumented)."""
    video_id = required_id(body, "video_id")
    optional_text(body, "prompt", limit=MAX_PROMPT)
    optional_text(body, "negative_prompt", limit=MAX_PROMPT)
    optional_unit_interval(body, "cfg_scale")
    wants_parent_task = ctx.flavour == "relay" and ctx.require_relay_parent
    parent_task_id = required_id(body, "task_id") if wants_parent_task else None
    parent = ctx.video(video_id, "video_id")
    if parent.duration + EXTENSION_SECONDS[1] > MAX_TOTAL_SECONDS:
        raise _invalid(
            f"video_id: the video is {parent.duration:g}s; an extended video may not exceed "
            f"{MAX_TOTAL_SECONDS:g}s"
        )
    if parent_task_id is not None and parent_task_id != parent.task_id:
        raise _invalid("task_id is not the task that produced video_id")
    if parent.kind not in EXTENDABLE_KINDS:
        raise _invalid(
            f"video_id: a {parent.kind} video cannot be extended; only videos from "
            f"{', '.join(EXTENDABLE_KINDS)}"
        )
    if parent.model not in EXTENDABLE_MODELS:
        raise _invalid(
            f"video_id: a {parent.model} video cannot be extended; only videos of "
            f"{', '.join(EXTENDABLE_MODELS)}"
        )
    low, high = EXTENSION_SECONDS
    return Plan(parent=parent, seconds=parent.duration + low, jitter=high - low, model=parent.model)


# -- text2video / image2video (kling-api.md 5.2) -----------------------------------------------


def known_model(
    body: Mapping[str, Any], name: str, models: tuple[str, ...], default: str = DEFAULT_MODEL
) -> str:
    """A listed model (absent: ``default``); a non-string is 1201, an unknown name 1203/404
    (kling-api.md 7: "resource does not exist (e.g. model)")."""
    if not present(body, name):
        return default
    value = body[name]
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    if value not in models:
        raise ApiError.not_found(f"{name} {value!r} does not exist; known: {', '.join(models)}")
    return value


def _model_name(body: Mapping[str, Any], models: tuple[str, ...]) -> str:
    """``model_name``, else the legacy alias ``model`` (empty: the default), else the default."""
    if present(body, "model_name"):
        return known_model(body, "model_name", models)
    if body.get("model") in (None, ""):
        return DEFAULT_MODEL
    return known_model(body, "model", models)


def _camera_control(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{type, config?}``: ``config`` belongs to (and is required by) type ``simple`` only,
    and moves exactly one axis, each axis in [-10, 10]."""
    control = optional_object(body, "camera_control")
    if control is None:
        return None
    where = "camera_control."
    kind = optional_choice(control, "type", CAMERA_TYPES, where=where)
    if kind is None:
        raise _invalid("camera_control.type is required")
    config = optional_object(control, "config", where=where)
    if kind != "simple":
        if config is not None:
            raise _invalid(f"camera_control.config is only for type simple, not {kind}")
        return control
    if config is None:
        raise _invalid("camera_control.config is required for type simple")
    moved = [
        axis
        for axis in CAMERA_AXES
        if optional_number_in(config, axis, -CAMERA_RANGE, CAMERA_RANGE, where=where + "config.")
    ]
    if len(moved) != 1:
        raise _invalid(
            "camera_control.config must set exactly one of "
            f"{', '.join(CAMERA_AXES)} to a non-zero value; got {len(moved)}"
        )
    return control


def _video_fields(
    body: Mapping[str, Any], models: tuple[str, ...], *, prompt_required: bool
) -> tuple[float, str]:
    """The fields text2video and image2video share; returns the length (s) and model."""
    model = _model_name(body, models)
    if prompt_required:
        required_text(body, "prompt", limit=MAX_PROMPT)
    else:
        optional_text(body, "prompt", limit=MAX_PROMPT)
    optional_text(body, "negative_prompt", limit=MAX_PROMPT)
    optional_unit_interval(body, "cfg_scale")
    optional_choice(body, "mode", MODES)
    optional_choice(body, "aspect_ratio", VIDEO_ASPECT_RATIOS)
    duration = optional_choice(body, "duration", VIDEO_DURATIONS) or VIDEO_DURATIONS[0]
    return float(duration), model


def validate_text2video(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """A required prompt; the result is one video of the requested ``duration``."""
    seconds, model = _video_fields(body, T2V_MODELS, prompt_required=True)
    _camera_control(body)
    return Plan(seconds=seconds, model=model)


def _dynamic_masks(body: Mapping[str, Any]) -> list[Any]:
    """At most 6 groups of ``{mask, trajectories: [{x, y}, ...]}``."""
    if not present(body, "dynamic_masks"):
        return []
    groups = body["dynamic_masks"]
    if not isinstance(groups, list):
        raise _invalid("dynamic_masks must be a list")
    if len(groups) > MAX_DYNAMIC_MASKS:
        raise _invalid(
            f"dynamic_masks may hold at most {MAX_DYNAMIC_MASKS} groups, got {len(groups)}"
        )
    for number, group in enumerate(groups):
        where = f"dynamic_masks[{number}]."
        if not isinstance(group, dict):
            raise _invalid(f"dynamic_masks[{number}] must be an object")
        if optional_image(group, "mask", where=where) is None:
            raise _invalid(f"{where}mask is required")
        points = group.get("trajectories")
        if not isinstance(points, list) or not points or not all(map(_is_point, points)):
            raise _invalid(f"{where}trajectories must be a non-empty list of {{x, y}} numbers")
    return groups


def _is_point(point: object) -> bool:
    return isinstance(point, dict) and all(
        isinstance(point.get(axis), (int, float)) and not isinstance(point.get(axis), bool)
        for axis in ("x", "y")
    )


def validate_image2video(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """``image`` and/or ``image_tail`` (URL or raw base64); the tail frame, the masks and
    camera control exclude each other. The result is one video of the requested length."""
    image = optional_image(body, "image")
    tail = optional_image(body, "image_tail")
    static_mask = optional_image(body, "static_mask")
    dynamic_masks = _dynamic_masks(body)
    camera = _camera_control(body)
    seconds, model = _video_fields(body, I2V_MODELS, prompt_required=False)
    if image is None and tail is None:
        raise _invalid("image can not be null (give image and/or image_tail)")
    features = [
        name
        for name, used in (
            ("image_tail", tail is not None),
            ("static_mask/dynamic_masks", static_mask is not None or bool(dynamic_masks)),
            ("camera_control", camera is not None),
        )
        if used
    ]
    if len(features) > 1:
        raise _invalid(
            f"{' and '.join(features)} cannot be combined: image+image_tail, masks and "
            "camera_control are mutually exclusive"
        )
    return Plan(seconds=seconds, model=model)


# -- images/generations, kolors-virtual-try-on (kling-api.md 5.2, 7.1) --------------------------


def validate_image_generation(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """A required prompt, ``n`` images (1-9, default 1). ``model_name`` may be any string:
    kling-api.md lists no image model names, so none is refused."""
    optional_id(body, "model_name")
    required_text(body, "prompt", limit=MAX_PROMPT)
    negative_prompt = optional_text(body, "negative_prompt", limit=MAX_PROMPT)
    image = optional_image(body, "image")
    optional_choice(body, "image_reference", IMAGE_REFERENCES)
    optional_unit_interval(body, "image_fidelity")
    optional_unit_interval(body, "human_fidelity")
    optional_choice(body, "resolution", RESOLUTIONS)
    count = optional_int_in(body, "n", 1, MAX_IMAGES)
    optional_choice(body, "aspect_ratio", IMAGE_ASPECT_RATIOS)
    if image is not None and negative_prompt:
        raise _invalid("negative_prompt is not supported together with image")
    return Plan(images=1 if count is None else count)


def validate_try_on(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """A required ``human_image``, an optional ``cloth_image``; the result is one image."""
    known_model(body, "model_name", TRY_ON_MODELS, TRY_ON_MODELS[0])
    human_image = optional_image(body, "human_image")
    optional_image(body, "cloth_image")
    if human_image is None:
        raise _invalid("human_image is required")
    return Plan(images=1)


# -- lip-sync, legacy (kling-api.md 5.2) ---------------------------------------------------------


def validate_lip_sync(body: Mapping[str, Any], ctx: CreateContext) -> Plan:
    """Everything sits in ``input``: the video (``video_id`` xor ``video_url``) and either a
    text to speak (``mode`` text2video) or audio (audio2video). The result is a new video as
    long as the source, which ``task_info.parent_video`` shows.

    A ``video_url`` the emulator itself serves is resolved to that video (it must still exist
    and be 2-60 s); any other URL is taken on trust as a video of 5 s, with no parent_video.
    """
    given = optional_object(body, "input")
    if given is None:
        raise _invalid("input is required")
    where = "input."
    video_id = optional_id(given, "video_id", where=where)
    video_url = optional_url(given, "video_url", where=where)
    mode = optional_choice(given, "mode", LIP_SYNC_MODES, where=where)
    text = optional_text(given, "text", limit=MAX_LIP_SYNC_TEXT, where=where)
    voice_id = optional_id(given, "voice_id", where=where)
    optional_choice(given, "voice_language", VOICE_LANGUAGES, where=where)
    optional_number_in(given, "voice_speed", *VOICE_SPEED, where=where)
    audio_type = optional_choice(given, "audio_type", AUDIO_TYPES, where=where)
    audio_file = optional_image(given, "audio_file", where=where)
    audio_url = optional_url(given, "audio_url", where=where)

    if mode is None:
        raise _invalid("input.mode is required")
    if mode == "text2video":
        if not text:
            raise _invalid("input.text is required when input.mode is text2video")
        if voice_id is None:
            raise _invalid("input.voice_id is required when input.mode is text2video")
    elif audio_type is None:
        raise _invalid("input.audio_type is required when input.mode is audio2video")
    elif audio_type == "file" and audio_file is None:
        raise _invalid("input.audio_file is required when input.audio_type is file")
    elif audio_type == "url" and audio_url is None:
        raise _invalid("input.audio_url is required when input.audio_type is url")

    if video_id is not None and video_url is not None:
        raise _invalid("input.video_id and input.video_url are mutually exclusive; give one")
    if video_id is not None:
        parent: VideoRecord | None = ctx.video(video_id, "input.video_id")
        low, field = 0.0, "input.video_id"
    elif video_url is not None:
        parent = ctx.video_at(video_url, "input.video_url")
        low, field = LIP_SYNC_SECONDS[0], "input.video_url"
    else:
        raise _invalid("input.video_id or input.video_url is required")
    if parent is None:
        return Plan(seconds=FOREIGN_VIDEO_SECONDS)
    high = LIP_SYNC_SECONDS[1]
    if not low <= parent.duration <= high:
        span = f"at most {high:g}s" if low == 0 else f"{low:g}-{high:g}s"
        raise _invalid(f"{field}: the video is {parent.duration:g}s; lip-sync takes {span}")
    return Plan(parent=parent, seconds=parent.duration)
