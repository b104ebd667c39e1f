"""What the tests of the later kinds share: a valid request of each, built against an
emulator (some start from one of its videos), and a raw poster for bodies the client would not
send."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from kling_async import FakeClock, KlingClient, Task
from kling_async.requests import (
    AdvancedLipSyncRequest,
    AvatarRequest,
    CreateRequest,
    EffectInput,
    EffectsRequest,
    FaceChoice,
    ImageExpandRequest,
    MotionControlRequest,
    MultiImageToImageRequest,
    MultiImageToVideoRequest,
    OmniVideoRequest,
)
from kling_async.testing import KlingEmulator

from ..watching import run_clock

PNG = "https://img.example/person.png"
MP4 = "https://video.example/dance.mp4"
IMAGE_KINDS = {"image-expand": 2, "multi-image2image": 3}  # kind -> images asked for
KINDS = [
    "multi-image2video",
    "omni-video",
    "effects",
    "image-expand",
    "multi-image2image",
    "advanced-lip-sync",
    "avatar",
    "motion-control",
]


def simple_requests(session_id: str = "") -> dict[str, CreateRequest]:
    """One valid request of each kind (advanced-lip-sync needs an identify-face session)."""
    return {
        "multi-image2video": MultiImageToVideoRequest(
            image_list=[PNG, {"image": PNG}], prompt="two friends wave", duration="10"
        ),
        "omni-video": OmniVideoRequest(prompt="a lighthouse at dusk", aspect_ratio="16:9"),
        "effects": EffectsRequest(effect_scene="squish", input=EffectInput(image=PNG)),
        "image-expand": ImageExpandRequest(
            image=PNG, left_expansion_ratio=0.5, right_expansion_ratio=0.5, n=2
        ),
        "multi-image2image": MultiImageToImageRequest(
            subject_image_list=[PNG], scene_image=PNG, n=3, aspect_ratio="3:2"
        ),
        "advanced-lip-sync": AdvancedLipSyncRequest(
            session_id=session_id or "none",
            face_choose=[
                FaceChoice(
                    face_id="0",
                    sound_file=MP4,
                    sound_start_time=0,
                    sound_end_time=3000,
                    sound_insert_time=0,
                )
            ],
        ),
        "avatar": AvatarRequest(image=PNG, audio_id="tts-1", mode="pro"),
        "motion-control": MotionControlRequest(
            image_url=PNG, video_url=MP4, character_orientation="video", mode="std"
        ),
    }


async def finish(clock: FakeClock, kling: KlingClient, task: Task) -> Task:
    waiting = asyncio.ensure_future(kling.wait(task))
    await run_clock(clock, kling, waiting.done, step=5.0)
    return await waiting


async def post_raw(
    emu: KlingEmulator, path: str, body: Any, *, flavour: str = "official"
) -> tuple[int, Any]:
    """POST ``body`` as JSON with the emulator's own credentials (no client in between)."""
    kwargs = emu.client_kwargs("relay" if flavour == "relay" else "key")
    base = emu.relay_url if flavour == "relay" else emu.url
    headers = {"Authorization": f"Bearer {kwargs['api_key']}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(base + path, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json(content_type=None)
