"""Create-body rules of the task family (kling-api.md 5.2, 8.8): each refusal is HTTP 400 code
1201 naming the field, creates nothing, and costs nothing; documented variants are accepted.
Unknown model names are a 1203 (tests/emulator/test_fidelity.py)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

URL = "https://img.example/person.png"
B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n not really an image").decode()
DATA_URI = "data:image/png;base64," + B64
MISSING = object()  # a change that removes the field

PATHS = {
    "text2video": "/v1/videos/text2video",
    "image2video": "/v1/videos/image2video",
    "lip-sync": "/v1/videos/lip-sync",
    "image-generation": "/v1/images/generations",
    "virtual-try-on": "/v1/images/kolors-virtual-try-on",
}
BASES: dict[str, dict[str, Any]] = {
    "text2video": {"prompt": "a cat"},
    "image2video": {"image": URL},
    "image-generation": {"prompt": "a fox"},
    "virtual-try-on": {"human_image": URL},
    "lip-sync": {"input": {"mode": "text2video", "text": "hello", "voice_id": "v1"}},
}
SIMPLE_ZOOM = {"type": "simple", "config": {"zoom": 5}}


def body_for(api: Any, kind: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The kind's valid base body with ``changes`` applied; ``"input.x"`` keys go into
    ``input``. Lip-sync bodies get a fresh 5 s video unless the changes name the source."""
    body = copy.deepcopy(BASES[kind])
    if kind == "lip-sync" and not {"input", "input.video_id", "input.video_url"} & set(changes):
        body["input"]["video_id"] = api.emu.add_video(5.0).video_id
    for key, value in changes.items():
        holder, name = (body["input"], key[6:]) if key.startswith("input.") else (body, key)
        if value is MISSING:
            holder.pop(name, None)
        else:
            holder[name] = value
    return body


async def refused(api: Any, kind: str, changes: dict[str, Any]) -> str:
    """Post the changed body; insist on 400/1201 with nothing created; return the message."""
    body = body_for(api, kind, changes)
    before = (api.emu.stats.created, len(api.emu.tasks))
    status, answer = await api.call("POST", PATHS[kind], json=body)
    api.assert_error(status, answer, 400, 1201)
    assert (api.emu.stats.created, len(api.emu.tasks)) == before
    message: str = answer["message"]
    return message


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # text2video
    ("text2video", {"prompt": MISSING}, "prompt"),
    ("text2video", {"prompt": ""}, "prompt"),
    ("text2video", {"prompt": "x" * 2501}, "prompt"),
    ("text2video", {"prompt": 42}, "prompt"),
    ("text2video", {"negative_prompt": "x" * 2501}, "negative_prompt"),
    ("text2video", {"cfg_scale": 1.5}, "cfg_scale"),
    ("text2video", {"cfg_scale": "0.5"}, "cfg_scale"),
    ("text2video", {"mode": "fast"}, "mode"),
    ("text2video", {"aspect_ratio": "4:3"}, "aspect_ratio"),
    ("text2video", {"duration": 5}, "duration"),  # a string, not a number
    ("text2video", {"duration": "7"}, "duration"),
    ("text2video", {"camera_control": "zoom"}, "camera_control"),
    ("text2video", {"camera_control": {"config": {"zoom": 5}}}, "camera_control.type"),
    ("text2video", {"camera_control": {"type": "spin"}}, "camera_control.type"),
    ("text2video", {"camera_control": {"type": "simple"}}, "camera_control.config"),
    ("text2video", {"camera_control": {"type": "simple", "config": 5}}, "camera_control.config"),
    (
        "text2video",
        {"camera_control": {"type": "simple", "config": {"zoom": 10.5}}},
        "camera_control.config.zoom",
    ),
    (
        "text2video",
        {"camera_control": {"type": "simple", "config": {"pan": -11}}},
        "camera_control.config.pan",
    ),
    (
        "text2video",
        {"camera_control": {"type": "simple", "config": {"tilt": "1"}}},
        "camera_control.config.tilt",
    ),
    (
        "text2video",
        {"camera_control": {"type": "simple", "config": {"zoom": 5, "roll": 1}}},
        "exactly one",
    ),
    (
        "text2video",
        {"camera_control": {"type": "simple", "config": {"zoom": 0}}},
        "exactly one",
    ),
    (
        "text2video",
        {"camera_control": {"type": "down_back", "config": {"zoom": 5}}},
        "camera_control.config",
    ),
    ("text2video", {"callback_url": "ftp://hooks"}, "callback_url"),
    ("text2video", {"external_task_id": 7}, "external_task_id"),
    ("text2video", {"watermark_info": True}, "watermark_info"),
    # image2video
    ("image2video", {"image": MISSING}, "image"),
    ("image2video", {"image": ""}, "image"),
    ("image2video", {"image": DATA_URI}, "image"),
    ("image2video", {"image": "not base64!"}, "image"),
    ("image2video", {"image": "QUJDRA"}, "image"),  # bad padding
    ("image2video", {"image": 12}, "image"),
    ("image2video", {"image_tail": DATA_URI}, "image_tail"),
    ("image2video", {"static_mask": DATA_URI}, "static_mask"),
    ("image2video", {"image_tail": URL, "camera_control": SIMPLE_ZOOM}, "camera_control"),
    ("image2video", {"image_tail": URL, "static_mask": URL}, "static_mask"),
    ("image2video", {"static_mask": URL, "camera_control": SIMPLE_ZOOM}, "camera_control"),
    (
        "image2video",
        {"dynamic_masks": [{"mask": URL, "trajectories": [{"x": 1, "y": 1}]}], "image_tail": URL},
        "dynamic_masks",
    ),
    ("image2video", {"dynamic_masks": {"mask": URL}}, "dynamic_masks"),
    (
        "image2video",
        {"dynamic_masks": [{"mask": URL, "trajectories": [{"x": 1, "y": 1}]}] * 7},
        "dynamic_masks",
    ),
    ("image2video", {"dynamic_masks": ["mask"]}, "dynamic_masks[0]"),
    (
        "image2video",
        {"dynamic_masks": [{"trajectories": [{"x": 1, "y": 1}]}]},
        "dynamic_masks[0].mask",
    ),
    (
        "image2video",
        {"dynamic_masks": [{"mask": DATA_URI, "trajectories": [{"x": 1, "y": 1}]}]},
        "dynamic_masks[0].mask",
    ),
    ("image2video", {"dynamic_masks": [{"mask": URL, "trajectories": []}]}, "trajectories"),
    (
        "image2video",
        {"dynamic_masks": [{"mask": URL, "trajectories": [{"x": "1", "y": 2}]}]},
        "trajectories",
    ),
    ("image2video", {"dynamic_masks": [{"mask": URL, "trajectories": [[1, 2]]}]}, "trajectories"),
    ("image2video", {"camera_control": {"type": "simple"}}, "camera_control.config"),
    ("image2video", {"prompt": "x" * 2501}, "prompt"),
    ("image2video", {"negative_prompt": "x" * 2501}, "negative_prompt"),
    ("image2video", {"cfg_scale": -0.1}, "cfg_scale"),
    ("image2video", {"mode": "turbo"}, "mode"),
    ("image2video", {"duration": "15"}, "duration"),
    ("image2video", {"callback_url": "hooks"}, "callback_url"),
    # image-generation
    ("image-generation", {"prompt": MISSING}, "prompt"),
    ("image-generation", {"prompt": "x" * 2501}, "prompt"),
    ("image-generation", {"negative_prompt": "x" * 2501}, "negative_prompt"),
    ("image-generation", {"image": URL, "negative_prompt": "blurry"}, "negative_prompt"),
    ("image-generation", {"image": DATA_URI}, "image"),
    ("image-generation", {"image_reference": "style"}, "image_reference"),
    ("image-generation", {"image_fidelity": 1.2}, "image_fidelity"),
    ("image-generation", {"human_fidelity": -1}, "human_fidelity"),
    ("image-generation", {"resolution": "4k"}, "resolution"),
    ("image-generation", {"n": 0}, "n"),
    ("image-generation", {"n": 10}, "n"),
    ("image-generation", {"n": 2.0}, "n"),
    ("image-generation", {"n": "3"}, "n"),
    ("image-generation", {"n": True}, "n"),
    ("image-generation", {"aspect_ratio": "5:4"}, "aspect_ratio"),
    ("image-generation", {"model_name": 5}, "model_name"),
    ("image-generation", {"callback_url": 5}, "callback_url"),
    # virtual-try-on
    ("virtual-try-on", {"human_image": MISSING}, "human_image"),
    ("virtual-try-on", {"human_image": DATA_URI}, "human_image"),
    ("virtual-try-on", {"cloth_image": DATA_URI}, "cloth_image"),
    ("virtual-try-on", {"cloth_image": "%%%"}, "cloth_image"),
    ("virtual-try-on", {"callback_url": "nope"}, "callback_url"),
    # lip-sync
    ("lip-sync", {"input": MISSING}, "input"),
    ("lip-sync", {"input": "video"}, "input"),
    ("lip-sync", {"input.video_id": MISSING}, "input.video_id"),
    ("lip-sync", {"input.video_id": 5}, "input.video_id"),
    ("lip-sync", {"input.video_url": "ftp://v.mp4"}, "input.video_url"),
    ("lip-sync", {"input.video_url": "https://cdn.example/a.mp4", "input.video_id": "x"}, "xor"),
    ("lip-sync", {"input.mode": MISSING}, "input.mode"),
    ("lip-sync", {"input.mode": "sing"}, "input.mode"),
    ("lip-sync", {"input.text": MISSING}, "input.text"),
    ("lip-sync", {"input.text": ""}, "input.text"),
    ("lip-sync", {"input.text": "x" * 121}, "input.text"),
    ("lip-sync", {"input.voice_id": MISSING}, "input.voice_id"),
    ("lip-sync", {"input.voice_language": "fr"}, "input.voice_language"),
    ("lip-sync", {"input.voice_speed": 0.7}, "input.voice_speed"),
    ("lip-sync", {"input.voice_speed": 2.1}, "input.voice_speed"),
    ("lip-sync", {"input.voice_speed": "1.0"}, "input.voice_speed"),
    ("lip-sync", {"input.mode": "audio2video"}, "input.audio_type"),
    ("lip-sync", {"input.mode": "audio2video", "input.audio_type": "mic"}, "input.audio_type"),
    ("lip-sync", {"input.mode": "audio2video", "input.audio_type": "file"}, "input.audio_file"),
    (
        "lip-sync",
        {"input.mode": "audio2video", "input.audio_type": "file", "input.audio_file": DATA_URI},
        "input.audio_file",
    ),
    ("lip-sync", {"input.mode": "audio2video", "input.audio_type": "url"}, "input.audio_url"),
    (
        "lip-sync",
        {"input.mode": "audio2video", "input.audio_type": "url", "input.audio_url": "a.mp3"},
        "input.audio_url",
    ),
    ("lip-sync", {"callback_url": "ftp://x"}, "callback_url"),
]


def _rule_id(rule: tuple[Any, ...]) -> str:
    kind, changes = rule[:2]
    shown = ",".join(
        f"{k}={'MISSING' if v is MISSING else repr(v)[:20]}" for k, v in changes.items()
    )
    return f"{kind}:{shown}"


@pytest.mark.parametrize(("kind", "changes", "field"), REFUSED, ids=map(_rule_id, REFUSED))
async def test_each_rule_refuses_with_1201_naming_the_field(
    api: Any, kind: str, changes: dict[str, Any], field: str
) -> None:
    message = await refused(api, kind, changes)
    if field == "xor":
        assert "input.video_id" in message and "input.video_url" in message, message
    else:
        assert field in message, message


@pytest.mark.parametrize("kind", ["image2video", "virtual-try-on", "image-generation"])
async def test_a_data_uri_is_not_valid_base64(api: Any, kind: str) -> None:
    field = "human_image" if kind == "virtual-try-on" else "image"
    message = await refused(api, kind, {field: DATA_URI})
    assert "File is not in a valid base64 format" in message


async def test_image2video_needs_an_image_and_says_so(api: Any) -> None:
    assert "image can not be null" in await refused(api, "image2video", {"image": MISSING})


ALL_T2V_MODELS = [
    "kling-v1",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
]
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    *(("text2video", {"model_name": name}) for name in ALL_T2V_MODELS),
    ("text2video", {"model": ""}),  # legacy alias, empty: kling-v1
    ("text2video", {"model": "kling-v1-6"}),
    ("text2video", {"prompt": "x" * 2500, "negative_prompt": "y" * 2500}),
    ("text2video", {"cfg_scale": 0, "mode": "pro", "aspect_ratio": "9:16", "duration": "10"}),
    ("text2video", {"cfg_scale": 1, "mode": "std", "aspect_ratio": "1:1", "duration": "5"}),
    *(
        ("text2video", {"camera_control": {"type": name}})
        for name in ("down_back", "forward_up", "right_turn_forward", "left_turn_forward")
    ),
    (
        "text2video",
        {
            "camera_control": {
                "type": "simple",
                "config": {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": 0, "roll": -10},
            }
        },
    ),
    ("text2video", {"camera_control": {"type": "simple", "config": {"zoom": 10}}}),
    ("text2video", {"callback_url": "http://hooks.example/k", "external_task_id": "e-1"}),
    ("text2video", {"watermark_info": {"enabled": True}}),
    *(("image2video", {"model_name": name}) for name in ("kling-v1-5", "kling-v2-1")),
    ("image2video", {"image": B64}),
    ("image2video", {"image": B64[:20] + "\n" + B64[20:]}),  # line-wrapped base64
    ("image2video", {"image": MISSING, "image_tail": URL}),
    ("image2video", {"image_tail": B64}),
    ("image2video", {"camera_control": SIMPLE_ZOOM, "prompt": "pan"}),
    (
        "image2video",
        {
            "static_mask": B64,
            "dynamic_masks": [{"mask": URL, "trajectories": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}]
            * 6,
        },
    ),
    ("image2video", {"dynamic_masks": []}),
    ("image2video", {"image": URL, "duration": "10", "mode": "pro", "cfg_scale": 0.3}),
    ("image-generation", {"n": 1}),
    ("image-generation", {"n": 9}),
    *(
        ("image-generation", {"aspect_ratio": ratio})
        for ratio in ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9")
    ),
    (
        "image-generation",
        {"image": B64, "image_reference": "face", "image_fidelity": 1, "human_fidelity": 0},
    ),
    ("image-generation", {"image": URL, "image_reference": "subject", "resolution": "2k"}),
    ("image-generation", {"negative_prompt": "blurry", "resolution": "1k"}),
    ("image-generation", {"image": URL, "negative_prompt": ""}),
    ("image-generation", {"model_name": "kling-v2"}),
    ("virtual-try-on", {"model_name": "kolors-virtual-try-on-v1-5", "cloth_image": B64}),
    ("virtual-try-on", {"model_name": "kolors-virtual-try-on-v1", "human_image": B64}),
    ("lip-sync", {"input.text": "x" * 120, "input.voice_language": "en"}),
    ("lip-sync", {"input.voice_speed": 0.8, "input.voice_language": "zh"}),
    ("lip-sync", {"input.voice_speed": 2}),
    ("lip-sync", {"input.video_url": "https://cdn.example/a.mp4"}),
    (
        "lip-sync",
        {
            "input.mode": "audio2video",
            "input.audio_type": "file",
            "input.audio_file": B64,
            "input.text": MISSING,
            "input.voice_id": MISSING,
        },
    ),
    (
        "lip-sync",
        {"input.mode": "audio2video", "input.audio_type": "url", "input.audio_url": URL},
    ),
]


@pytest.mark.parametrize(("kind", "changes"), ACCEPTED, ids=map(_rule_id, ACCEPTED))
async def test_documented_variants_are_accepted(
    api: Any, kind: str, changes: dict[str, Any]
) -> None:
    body = body_for(api, kind, changes)
    status, answer = await api.call("POST", PATHS[kind], json=body)
    assert (status, answer["code"]) == (200, 0), answer
    assert api.emu.tasks[answer["data"]["task_id"]].kind == kind


@pytest.mark.parametrize("emulator_options", [{"slot_limit": 1, "balance_units": 3}])
async def test_invalid_bodies_are_refused_before_limits_for_every_kind(api: Any) -> None:
    for kind, changes, _ in REFUSED[::7]:
        await refused(api, kind, changes)
    assert api.emu.balance == 3
    assert api.emu.slots_in_use == 0
