"""Request validation for every kind: each rule refuses bad input before any I/O, naming the
field; good input goes out in wire form and comes back (from a journal) unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from kling_async import RequestValidationError
from kling_async.requests import (
    CameraConfig,
    CameraControl,
    DynamicMask,
    ImageGenerationRequest,
    ImageToVideoRequest,
    LipSyncInput,
    LipSyncRequest,
    TextToVideoRequest,
    Trajectory,
    VideoExtendRequest,
    VirtualTryOnRequest,
)
from kling_async.serde import request_from_wire, unstructure_request

PNG = "https://img.example/cat.png"
B64 = "aGVsbG8gd29ybGQ="


def lip(**kw: Any) -> LipSyncInput:
    base: dict[str, Any] = {"mode": "text2video", "video_id": "v1", "text": "hi", "voice_id": "x"}
    return LipSyncInput(**{**base, **kw})


BAD: list[tuple[Any, str]] = [
    (lambda: TextToVideoRequest(prompt=""), "prompt"),
    (lambda: TextToVideoRequest(prompt="x" * 2501), "prompt"),
    (lambda: TextToVideoRequest(prompt="p", mode="fast"), "mode"),
    (lambda: TextToVideoRequest(prompt="p", aspect_ratio="4:3"), "aspect_ratio"),
    (lambda: TextToVideoRequest(prompt="p", duration=7), "duration"),
    (lambda: TextToVideoRequest(prompt="p", cfg_scale=2), "cfg_scale"),
    (lambda: CameraControl(type="spin"), "type"),
    (lambda: CameraControl(type="simple"), "camera_control.config"),
    (lambda: CameraControl(type="down_back", config=CameraConfig(zoom=1)), "camera_control.config"),
    (lambda: CameraConfig(zoom=1, pan=2), "camera_control.config"),
    (lambda: CameraConfig(), "camera_control.config"),
    (lambda: CameraConfig(zoom=11), "zoom"),
    (lambda: ImageToVideoRequest(), "image"),
    (lambda: ImageToVideoRequest(image="data:image/png;base64," + B64), "image"),
    (lambda: ImageToVideoRequest(image="not base64 at all!"), "image"),
    (lambda: ImageToVideoRequest(image=PNG, image_tail="ftp://x/y.png"), "image_tail"),
    (lambda: ImageToVideoRequest(image=PNG, image_tail=PNG, static_mask=B64), "masks"),
    (
        lambda: ImageToVideoRequest(
            image=PNG, static_mask=B64, camera_control=CameraControl(type="forward_up")
        ),
        "camera_control",
    ),
    (
        lambda: ImageToVideoRequest(
            image=PNG, dynamic_masks=[DynamicMask(mask=B64, trajectories=[Trajectory(0, 0)])] * 7
        ),
        "dynamic_masks",
    ),
    (lambda: DynamicMask(mask=B64, trajectories=[]), "dynamic_masks.trajectories"),
    (lambda: ImageGenerationRequest(prompt="p", n=10), "n"),
    (lambda: ImageGenerationRequest(prompt="p", n=0), "n"),
    (lambda: ImageGenerationRequest(prompt="p", n=2.5), "n"),
    (lambda: ImageGenerationRequest(prompt="p", aspect_ratio="5:4"), "aspect_ratio"),
    (lambda: ImageGenerationRequest(prompt="p", resolution="4k"), "resolution"),
    (
        lambda: ImageGenerationRequest(prompt="p", image=PNG, negative_prompt="no"),
        "negative_prompt",
    ),
    (lambda: ImageGenerationRequest(prompt="p", image_reference="face"), "image_reference"),
    (lambda: ImageGenerationRequest(prompt="p", image=PNG, image_fidelity=1.5), "image_fidelity"),
    (lambda: VirtualTryOnRequest(human_image=""), "human_image"),
    (lambda: VirtualTryOnRequest(human_image=PNG, model_name="v9"), "model_name"),
    (lambda: lip(video_url="https://v.example/a.mp4"), "input.video_id"),
    (lambda: lip(video_id=None), "input.video_id"),
    (lambda: lip(text="x" * 121), "text"),
    (lambda: lip(text=None), "input.text"),
    (lambda: lip(voice_id=None), "input.voice_id"),
    (lambda: lip(voice_speed=2.5), "voice_speed"),
    (lambda: lip(voice_speed=1.25), "voice_speed"),
    (lambda: lip(voice_language="fr"), "voice_language"),
    (lambda: lip(mode="audio2video"), "input.audio_type"),
    (lambda: lip(mode="audio2video", audio_type="url"), "input.audio_url"),
    (lambda: lip(mode="sing"), "mode"),
]


@pytest.mark.parametrize(("build", "field"), BAD)
def test_each_rule_refuses_bad_input(build: Any, field: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        build()
    assert info.value.field == field


GOOD = [
    VideoExtendRequest(video_id="v", prompt="p", cfg_scale=0.3, watermark_info=False),
    TextToVideoRequest(
        prompt="a cat",
        model_name="kling-v1-6",
        mode="pro",
        camera_control=CameraControl(type="simple", config=CameraConfig(zoom=-3)),
        aspect_ratio="9:16",
        duration=10,
        external_task_id="t2v-1",
    ),
    ImageToVideoRequest(image=B64, prompt="walks"),
    ImageToVideoRequest(image=PNG, image_tail=PNG),
    ImageToVideoRequest(
        image=PNG,
        static_mask=B64,
        dynamic_masks=[DynamicMask(mask=B64, trajectories=[Trajectory(0, 0), Trajectory(5, 9)])],
    ),
    ImageGenerationRequest(prompt="p", image=PNG, image_reference="subject", n=9, resolution="2k"),
    VirtualTryOnRequest(human_image=PNG, cloth_image=B64, model_name="kolors-virtual-try-on-v1-5"),
    LipSyncRequest(input=lip(voice_speed=1.2, voice_language="en")),
    LipSyncRequest(
        input=LipSyncInput(
            mode="audio2video",
            video_url="https://v.example/a.mp4",
            audio_type="file",
            audio_file=B64,
        )
    ),
]


@pytest.mark.parametrize("request_", GOOD, ids=lambda r: r.kind)
def test_good_requests_round_trip_through_the_wire_form(request_: Any) -> None:
    body = unstructure_request(request_)
    assert None not in body.values()
    assert request_from_wire(request_.kind, body) == request_


def test_wire_details() -> None:
    t2v = unstructure_request(GOOD[1])
    assert t2v["duration"] == "10"
    assert t2v["camera_control"]["config"] == {
        "horizontal": 0.0,
        "vertical": 0.0,
        "pan": 0.0,
        "tilt": 0.0,
        "roll": 0.0,
        "zoom": -3.0,
    }
    assert unstructure_request(GOOD[-2])["input"]["voice_language"] == "en"
    assert GOOD[-2].parent_video_id == "v1" and GOOD[1].parent_video_id is None
    with pytest.raises(RequestValidationError, match="kind"):
        request_from_wire("teleport", {})
    with pytest.raises(RequestValidationError) as info:
        request_from_wire("text2video", {"prompt": "p", "mode": "slow"})
    assert info.value.field == "mode"
