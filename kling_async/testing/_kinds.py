"""The task kinds the emulator serves, as one declarative table.

Each kind names its official path (mounted again under ``/kling`` for the relay flavour) and,
if it can be created here, the rules for its create body. Adding a video kind (image2video,
lip-sync...) is one more row plus its body validator. All kinds so far produce videos; image
kinds (images/generations, try-on) will need a result-type column (``task_result.images``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from kling_async.testing._replies import ApiError
from kling_async.testing._tasks import VideoRecord
from kling_async.testing._validation import optional_text, optional_unit_interval, required_id

__all__ = ["KINDS", "CreateContext", "CreateRules", "Flavour", "Kind"]

Flavour = Literal["official", "relay"]

MAX_PROMPT = 2500
MAX_TOTAL_SECONDS = 180.0  # an extended video must stay within 3 minutes
EXTENSION_SECONDS = (4.0, 5.0)  # one extension adds 4-5 s


@attrs.frozen
class CreateContext:
    """What a body validator may consult besides the body."""

    flavour: Flavour
    require_relay_parent: bool
    video: Callable[[str], VideoRecord]  # an available video by id, else ApiError 1201


Validator = Callable[[Mapping[str, Any], CreateContext], "VideoRecord | None"]
ResultSeconds = Callable[["VideoRecord | None", random.Random], float]


@attrs.frozen
class CreateRules:
    """How a kind is created: its body validator (returning the parent video, if the kind
    continues one) and the length of the video it produces."""

    validate: Validator
    result_seconds: ResultSeconds


@attrs.frozen
class Kind:
    """One row: the kind's name (what the client calls ``Task.kind``), its official collection
    path, and how it is created here, if it can be."""

    name: str
    path: str  # official path of the collection, e.g. "/v1/videos/video-extend"
    create: CreateRules | None = None  # None: queryable only (e.g. seeded parent tasks)


def _validate_extend(body: Mapping[str, Any], ctx: CreateContext) -> VideoRecord:
    """kling-api.md 3.1/3.2: ``video_id`` of an available video short enough to extend;
    the relay flavour also wants the ``task_id`` that produced it."""
    video_id = required_id(body, "video_id")
    optional_text(body, "prompt", limit=MAX_PROMPT)
    optional_text(body, "negative_prompt", limit=MAX_PROMPT)
    optional_unit_interval(body, "cfg_scale")
    wants_parent_task = ctx.flavour == "relay" and ctx.require_relay_parent
    parent_task_id = required_id(body, "task_id") if wants_parent_task else None
    parent = ctx.video(video_id)
    if parent.duration + EXTENSION_SECONDS[1] > MAX_TOTAL_SECONDS:
        raise ApiError.invalid(
            f"video_id: the video is {parent.duration:g}s; an extended video may not exceed "
            f"{MAX_TOTAL_SECONDS:g}s"
        )
    if parent_task_id is not None and parent_task_id != parent.task_id:
        raise ApiError.invalid("task_id is not the task that produced video_id")
    return parent


def _extended_seconds(parent: VideoRecord | None, rng: random.Random) -> float:
    """The whole continued video: the parent plus 4-5 s."""
    assert parent is not None, "video-extend always has a parent"
    return round(parent.duration + rng.uniform(*EXTENSION_SECONDS), 3)


KINDS: tuple[Kind, ...] = (
    Kind("text2video", "/v1/videos/text2video"),
    Kind(
        "video-extend", "/v1/videos/video-extend", CreateRules(_validate_extend, _extended_seconds)
    ),
)
