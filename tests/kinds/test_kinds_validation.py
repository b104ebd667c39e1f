"""Each documented rule of the later kinds, both ends: the client refuses a bad request before
any I/O (naming the field), and the emulator answers 1201 to a body the client would not send
(posted raw), per kling-api-more-kinds.md §2-§9."""

from __future__ import annotations

from typing import Any

import pytest

from kling_async import RequestValidationError
from kling_async.requests.fields import build_request

from ..conftest import MakeClient, MakeEmulator, requests_to
from .common import MP4, PNG, post_raw

FACE = {
    "face_id": "0",
    "sound_file": PNG,
    "sound_start_time": 0,
    "sound_end_time": 3000,
    "sound_insert_time": 0,
}
MOTION = {"image_url": PNG, "video_url": MP4, "character_orientation": "video", "mode": "std"}

# (kind, fields, the field named, words of the reason)
CLIENT_REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    # §2 multi-image2video
    ("multi-image2video", {"prompt": "x"}, "image_list", "required"),
    ("multi-image2video", {"image_list": [], "prompt": "x"}, "image_list", "1 to 4"),
    ("multi-image2video", {"image_list": [PNG] * 5, "prompt": "x"}, "image_list", "1 to 4"),
    ("multi-image2video", {"image_list": [PNG]}, "prompt", "required"),
    ("multi-image2video", {"image_list": [PNG], "prompt": "x" * 2501}, "prompt", "2500"),
    (
        "multi-image2video",
        {"image_list": ["data:image/png;base64,AAAA"], "prompt": "x"},
        "image_list[0].image",
        "data:",
    ),
    (
        "multi-image2video",
        {"image_list": [PNG], "prompt": "x", "model_name": "kling-v1"},
        "model_name",
        "kling-v1-6",
    ),
    ("multi-image2video", {"image_list": [PNG], "prompt": "x", "duration": "7"}, "duration", "'5'"),
    (
        "multi-image2video",
        {"image_list": [PNG], "prompt": "x", "aspect_ratio": "4:3"},
        "aspect_ratio",
        "16:9",
    ),
    # §3.1 omni-video
    ("omni-video", {"aspect_ratio": "16:9"}, "prompt", "required"),
    ("omni-video", {"prompt": "x"}, "aspect_ratio", "required"),
    ("omni-video", {"prompt": "x", "aspect_ratio": "1:1", "duration": "15"}, "duration", "o1"),
    ("omni-video", {"prompt": "x", "aspect_ratio": "1:1", "duration": "2"}, "duration", "'3'"),
    ("omni-video", {"multi_shot": True, "aspect_ratio": "1:1"}, "shot_type", "required"),
    (
        "omni-video",
        {"multi_shot": True, "shot_type": "customize", "aspect_ratio": "1:1"},
        "multi_prompt",
        "required",
    ),
    (
        "omni-video",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "aspect_ratio": "1:1",
            "multi_prompt": [{"index": 1, "prompt": "a", "duration": "2"}],
        },
        "multi_prompt",
        "add up",
    ),
    (
        "omni-video",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "aspect_ratio": "1:1",
            "multi_prompt": [{"index": 1, "prompt": "a" * 513, "duration": "5"}],
        },
        "multi_prompt[0].prompt",
        "512",
    ),
    (
        "omni-video",
        {"prompt": "x", "aspect_ratio": "1:1", "image_list": [PNG] * 8},
        "image_list",
        "1 to 7",
    ),
    (
        "omni-video",
        {
            "prompt": "x",
            "aspect_ratio": "1:1",
            "image_list": [PNG] * 5,
            "video_list": [{"video_url": MP4, "refer_type": "feature"}],
        },
        "image_list",
        "at most 4",
    ),
    (
        "omni-video",
        {
            "prompt": "x",
            "aspect_ratio": "1:1",
            "image_list": [{"image_url": PNG, "type": "end_frame"}],
        },
        "image_list",
        "first_frame",
    ),
    (
        "omni-video",
        {
            "prompt": "x",
            "video_list": [MP4],
            "image_list": [{"image_url": PNG, "type": "first_frame"}],
        },
        "image_list",
        "base video",
    ),
    ("omni-video", {"prompt": "x", "video_list": [MP4], "sound": "on"}, "sound", "off"),
    ("omni-video", {"prompt": "x", "video_list": [MP4, MP4]}, "video_list", "1 to 1"),
    ("omni-video", {"prompt": "x", "aspect_ratio": "1:1", "mode": "4k"}, "mode", "kling-v3-omni"),
    (
        "omni-video",
        {"prompt": "x", "aspect_ratio": "1:1", "multi_shot": "yes"},
        "multi_shot",
        "true or false",
    ),
    (
        "omni-video",
        {"prompt": "x", "video_list": [{"video_url": "ftp://v/x.mp4"}]},
        "video_list[0].video_url",
        "http",
    ),
    # §4 effects
    ("effects", {"input": {"image": PNG}}, "effect_scene", "required"),
    ("effects", {"effect_scene": "squish"}, "input", "required"),
    ("effects", {"effect_scene": "squish", "input": {}}, "input.image", "exactly one"),
    (
        "effects",
        {"effect_scene": "hug", "input": {"image": PNG, "images": [PNG, PNG]}},
        "input.image",
        "exactly one",
    ),
    ("effects", {"effect_scene": "hug", "input": {"images": [PNG]}}, "input.images", "2 images"),
    (
        "effects",
        {"effect_scene": "squish", "input": {"image": PNG, "duration": "10"}},
        "input.duration",
        "'5'",
    ),
    (
        "effects",
        {"effect_scene": "squish", "input": {"image": PNG, "mode": "pro"}},
        "input.mode",
        "dual",
    ),
    (
        "effects",
        {"effect_scene": "hug", "input": {"images": [PNG, PNG], "model_name": "v9"}},
        "input.model_name",
        "kling-v1",
    ),
    (
        "effects",
        {"effect_scene": "squish", "input": {"image": PNG}, "watermark": True},
        "watermark",
        "unknown field",
    ),
    # §5 image-expand
    ("image-expand", {}, "image", "required"),
    ("image-expand", {"image": PNG, "up_expansion_ratio": 2.5}, "up_expansion_ratio", "[0, 2]"),
    (
        "image-expand",
        {"image": PNG, "left_expansion_ratio": -0.1},
        "left_expansion_ratio",
        "[0, 2]",
    ),
    (
        "image-expand",
        {"image": PNG, "up_expansion_ratio": 1, "left_expansion_ratio": 1},
        "up_expansion_ratio",
        "at most 3",
    ),
    ("image-expand", {"image": PNG, "n": 10}, "n", "[1, 9]"),
    ("image-expand", {"image": PNG, "prompt": "x" * 2501}, "prompt", "2500"),
    # §6 multi-image2image
    ("multi-image2image", {"prompt": "x"}, "subject_image_list", "required"),
    ("multi-image2image", {"subject_image_list": [PNG] * 5}, "subject_image_list", "1 to 4"),
    (
        "multi-image2image",
        {"subject_image_list": [PNG], "model_name": "kling-v1"},
        "model_name",
        "kling-v2",
    ),
    (
        "multi-image2image",
        {"subject_image_list": [PNG], "aspect_ratio": "5:4"},
        "aspect_ratio",
        "21:9",
    ),
    ("multi-image2image", {"subject_image_list": [PNG], "n": 0}, "n", "[1, 9]"),
    (
        "multi-image2image",
        {"subject_image_list": [PNG], "style_image": "data:x"},
        "style_image",
        "data:",
    ),
    # §7.2 advanced-lip-sync
    ("advanced-lip-sync", {"face_choose": [FACE]}, "session_id", "required"),
    ("advanced-lip-sync", {"session_id": "s", "face_choose": []}, "face_choose", "one face"),
    (
        "advanced-lip-sync",
        {"session_id": "s", "face_choose": [FACE, FACE]},
        "face_choose",
        "one face",
    ),
    (
        "advanced-lip-sync",
        {"session_id": "s", "face_choose": [{**FACE, "audio_id": "a"}]},
        "face_choose.audio_id",
        "exactly one",
    ),
    (
        "advanced-lip-sync",
        {"session_id": "s", "face_choose": [{**FACE, "sound_end_time": 1999}]},
        "face_choose.sound_end_time",
        "2000 ms",
    ),
    (
        "advanced-lip-sync",
        {"session_id": "s", "face_choose": [{**FACE, "sound_volume": 3}]},
        "face_choose[0].sound_volume",
        "[0, 2]",
    ),
    (
        "advanced-lip-sync",
        {"session_id": "s", "face_choose": [{k: v for k, v in FACE.items() if k != "face_id"}]},
        "face_choose[0].face_id",
        "required",
    ),
    # §8 avatar
    ("avatar", {"audio_id": "a"}, "image", "required"),
    ("avatar", {"image": PNG}, "audio_id", "exactly one"),
    ("avatar", {"image": PNG, "audio_id": "a", "sound_file": PNG}, "audio_id", "exactly one"),
    ("avatar", {"image": PNG, "audio_id": "a", "mode": "max"}, "mode", "'std'"),
    ("avatar", {"image": PNG, "audio_id": "a", "model_name": "x"}, "model_name", "unknown field"),
    # §9.1 motion-control
    (
        {"kind": "motion-control"}["kind"],
        {**MOTION, "character_orientation": None},
        "character_orientation",
        "required",
    ),
    ("motion-control", {k: v for k, v in MOTION.items() if k != "mode"}, "mode", "required"),
    ("motion-control", {**MOTION, "video_url": "not a url"}, "video_url", "URL"),
    ("motion-control", {**MOTION, "model_name": "kling-v1"}, "model_name", "kling-v2-6"),
    (
        "motion-control",
        {**MOTION, "element_list": [{"element_id": 1}, {"element_id": 2}]},
        "element_list",
        "1 to 1",
    ),
    ("motion-control", {**MOTION, "keep_original_sound": "maybe"}, "keep_original_sound", "yes"),
    ("motion-control", {**MOTION, "duration": "5"}, "duration", "unknown field"),
]


@pytest.mark.parametrize(("kind", "fields", "field", "says"), CLIENT_REFUSALS)
async def test_the_client_refuses_before_any_io(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    kind: str,
    fields: dict[str, Any],
    field: str,
    says: str,
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    fields = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(RequestValidationError) as caught:
        async for _ in kling.extend_many([{"kind": kind, **fields}]):
            pass
    assert caught.value.field == field, caught.value
    assert says in str(caught.value)
    assert requests_to(emu, "create") == 0


def test_each_refusal_is_of_one_field_of_an_otherwise_valid_request() -> None:
    # The table's rows must differ from a valid request by the one rule they break: these
    # valid neighbours are built without error.
    for kind, fields in [
        ("multi-image2video", {"image_list": [PNG] * 4, "prompt": "x" * 2500}),
        ("omni-video", {"prompt": "x", "aspect_ratio": "1:1", "image_list": [PNG] * 7}),
        ("omni-video", {"prompt": "x", "video_list": [MP4]}),  # a base video fixes the ratio
        ("omni-video", {"prompt": "x", "image_list": [{"image_url": PNG, "type": "first_frame"}]}),
        (
            "omni-video",
            {
                "prompt": "x",
                "aspect_ratio": "1:1",
                "model_name": "kling-v3-omni",
                "duration": "15",
                "mode": "4k",
            },
        ),
        (
            "omni-video",
            {
                "multi_shot": True,
                "shot_type": "customize",
                "aspect_ratio": "1:1",
                "multi_prompt": [
                    {"index": 1, "prompt": "a", "duration": "2"},
                    {"index": 2, "prompt": "b", "duration": "3"},
                ],
            },
        ),
        (
            "effects",
            {
                "effect_scene": "hug",
                "input": {
                    "images": [PNG, PNG],
                    "duration": "10",
                    "model_name": "kling-v1-6",
                    "mode": "pro",
                },
            },
        ),
        ("image-expand", {"image": PNG, "up_expansion_ratio": 0.5, "left_expansion_ratio": 1}),
        ("advanced-lip-sync", {"session_id": "s", "face_choose": [{**FACE, "sound_volume": 2}]}),
        ("motion-control", {**MOTION, "element_list": [{"element_id": 1}]}),
    ]:
        build_request(kind, fields)


OMNI = {"prompt": "x", "aspect_ratio": "1:1"}
# (path, body, words of the emulator's 1201 message)
SERVER_REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/videos/multi-image2video", {"prompt": "x"}, "image_list takes 1 to 4"),
    (
        "/v1/videos/multi-image2video",
        {"image_list": [{"image": PNG}] * 5, "prompt": "x"},
        "image_list takes 1 to 4",
    ),
    (
        "/v1/videos/multi-image2video",
        {"image_list": [{}], "prompt": "x"},
        "image_list[0].image is required",
    ),
    ("/v1/videos/multi-image2video", {"image_list": [{"image": PNG}]}, "prompt is required"),
    (
        "/v1/videos/multi-image2video",
        {"image_list": [{"image": PNG}], "prompt": "x", "duration": 5},
        "duration must be one of",
    ),
    ("/v1/videos/omni-video", {"aspect_ratio": "1:1"}, "prompt is required"),
    ("/v1/videos/omni-video", {"prompt": "x"}, "aspect_ratio is required"),
    ("/v1/videos/omni-video", {**OMNI, "duration": "11"}, "duration must be one of"),
    ("/v1/videos/omni-video", {**OMNI, "multi_shot": True}, "shot_type is required"),
    (
        "/v1/videos/omni-video",
        {
            **OMNI,
            "multi_shot": True,
            "shot_type": "customize",
            "multi_prompt": [{"prompt": "a", "duration": "4"}],
        },
        "add up to 4",
    ),
    (
        "/v1/videos/omni-video",
        {**OMNI, "image_list": [{"image_url": PNG}] * 8},
        "image_list takes 0 to 7",
    ),
    (
        "/v1/videos/omni-video",
        {**OMNI, "image_list": [{"image_url": PNG, "type": "end_frame"}]},
        "needs a first_frame",
    ),
    (
        "/v1/videos/omni-video",
        {**OMNI, "video_list": [{"video_url": MP4}], "sound": "on"},
        "sound must be off",
    ),
    (
        "/v1/videos/omni-video",
        {**OMNI, "video_list": [{"video_url": MP4}] * 2},
        "video_list takes 0 to 1",
    ),
    ("/v1/videos/omni-video", {**OMNI, "mode": "4k"}, "mode must be one of"),
    ("/v1/videos/effects", {"input": {"image": PNG}}, "effect_scene is required"),
    ("/v1/videos/effects", {"effect_scene": "squish"}, "input is required"),
    (
        "/v1/videos/effects",
        {"effect_scene": "hug", "input": {"images": [PNG]}},
        "input.images must hold 2",
    ),
    (
        "/v1/videos/effects",
        {"effect_scene": "squish", "input": {"image": PNG, "duration": "10"}},
        "input.duration must be one of",
    ),
    ("/v1/images/editing/expand", {"image": PNG}, "up_expansion_ratio is required"),
    (
        "/v1/images/editing/expand",
        {
            "image": PNG,
            "up_expansion_ratio": 1,
            "down_expansion_ratio": 0,
            "left_expansion_ratio": 1,
            "right_expansion_ratio": 0,
        },
        "at most 3",
    ),
    (
        "/v1/images/editing/expand",
        {
            "image": PNG,
            "up_expansion_ratio": 3,
            "down_expansion_ratio": 0,
            "left_expansion_ratio": 0,
            "right_expansion_ratio": 0,
        },
        "up_expansion_ratio must be in [0, 2]",
    ),
    ("/v1/images/multi-image2image", {"prompt": "x"}, "subject_image_list takes 1 to 4"),
    (
        "/v1/images/multi-image2image",
        {"subject_image_list": [{"subject_image": PNG}], "n": 10},
        "n must be an integer in [1, 9]",
    ),
    (
        "/v1/videos/advanced-lip-sync",
        {"session_id": "nope", "face_choose": [FACE]},
        "session_id does not name",
    ),
    ("/v1/videos/avatar/image2video", {"image": PNG}, "exactly one of audio_id, sound_file"),
    ("/v1/videos/avatar/image2video", {"audio_id": "a"}, "image is required"),
    (
        "/v1/videos/motion-control",
        {k: v for k, v in MOTION.items() if k != "mode"},
        "mode is required",
    ),
    (
        "/v1/videos/motion-control",
        {**MOTION, "character_orientation": "side"},
        "character_orientation must be one of",
    ),
    (
        "/v1/videos/motion-control",
        {**MOTION, "element_list": [{"element_id": 1}] * 2},
        "element_list takes 0 to 1",
    ),
]


@pytest.mark.parametrize("flavour", ["official", "relay"])
@pytest.mark.parametrize(("path", "body", "says"), SERVER_REFUSALS)
async def test_the_emulator_refuses_what_the_client_would_not_send(
    make_emulator: MakeEmulator, path: str, body: dict[str, Any], says: str, flavour: str
) -> None:
    emu = await make_emulator()
    status, answer = await post_raw(emu, path, body, flavour=flavour)
    assert (status, answer["code"]) == (400, 1201), answer
    assert says in answer["message"], answer["message"]
    assert emu.stats.created == 0
