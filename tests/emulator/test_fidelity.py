"""The emulator's rules that an audit found wrong, now as the docs state them: extend sources
(kling-api.md 3.1), unknown models (7: 1203), per-pack pools and balances (7.1,
kling-api-more-kinds.md 13), and the image checks behind ``check_images`` (5.2)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kling_async.clock import FakeClock
from tests.images import b64, jpeg, png

EXTEND = "/v1/videos/video-extend"
T2V = "/v1/videos/text2video"
I2V = "/v1/videos/image2video"
IMAGES = "/v1/images/generations"
TRY_ON = "/v1/images/kolors-virtual-try-on"
URL = "https://img.example/person.png"


async def refused(api: Any, path: str, body: dict[str, Any], http: int, code: int) -> str:
    before = (api.emu.stats.created, api.emu.balance)
    status, answer = await api.call("POST", path, json=body)
    api.assert_error(status, answer, http, code)
    assert (api.emu.stats.created, api.emu.balance) == before  # nothing made, nothing charged
    message: str = answer["message"]
    return message


async def made(api: Any, path: str, body: dict[str, Any]) -> str:
    status, answer = await api.call("POST", path, json=body)
    assert (status, answer["code"]) == (200, 0), answer
    task_id: str = answer["data"]["task_id"]
    return task_id


# -- extend sources (kling-api.md 3.1) ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["lip-sync", "effects", "image-generation"])
async def test_only_t2v_i2v_and_extend_videos_can_be_extended(api: Any, kind: str) -> None:
    seed = api.emu.add_video(5.0, kind=kind)
    message = await refused(api, EXTEND, {"video_id": seed.video_id}, 400, 1201)
    assert kind in message and "video_id" in message


@pytest.mark.parametrize("model", ["kling-v2-master", "kling-v2-1-master", "kling-v2-5-turbo"])
async def test_videos_of_v2_models_cannot_be_extended(api: Any, model: str) -> None:
    seed = api.emu.add_video(5.0, model=model)
    message = await refused(api, EXTEND, {"video_id": seed.video_id}, 400, 1201)
    assert model in message


@pytest.mark.parametrize("kind", ["text2video", "image2video", "video-extend"])
@pytest.mark.parametrize("model", ["kling-v1", "kling-v1-5", "kling-v1-6"])
async def test_documented_sources_extend(api: Any, kind: str, model: str) -> None:
    seed = api.emu.add_video(5.0, kind=kind, model=model)
    await made(api, EXTEND, {"video_id": seed.video_id})


async def test_the_model_follows_a_video_through_creates_and_extends(
    api: Any, clock: FakeClock
) -> None:
    v2 = await made(api, T2V, {"prompt": "a cat", "model_name": "kling-v2-master"})
    v16 = await made(api, T2V, {"prompt": "a cat", "model_name": "kling-v1-6"})
    await clock.advance(400)
    v2_video = api.emu.tasks[v2].result.video_id
    await refused(api, EXTEND, {"video_id": v2_video}, 400, 1201)
    extended = await made(api, EXTEND, {"video_id": api.emu.tasks[v16].result.video_id})
    await clock.advance(400)
    assert api.emu.tasks[extended].result.model == "kling-v1-6"  # inherited, not chosen
    await made(api, EXTEND, {"video_id": api.emu.tasks[extended].result.video_id})


# -- unknown models (kling-api.md 7: 1203 "resource does not exist (e.g. model)") ---------------

UNKNOWN_MODELS = [
    (T2V, {"prompt": "a cat", "model_name": "kling-v9"}),
    (T2V, {"prompt": "a cat", "model_name": "kling-v1-5"}),  # an image2video model only
    (T2V, {"prompt": "a cat", "model": "kling-v9"}),  # the legacy alias
    (I2V, {"image": URL, "model_name": "kling-v9"}),
    (TRY_ON, {"human_image": URL, "model_name": "kolors-virtual-try-on-v2"}),
]


@pytest.mark.parametrize(("path", "body"), UNKNOWN_MODELS)
async def test_an_unknown_model_is_1203_404(api: Any, path: str, body: dict[str, Any]) -> None:
    message = await refused(api, path, body, 404, 1203)
    assert "does not exist" in message


async def test_a_model_name_that_is_not_a_string_is_still_1201(api: Any) -> None:
    await refused(api, T2V, {"prompt": "a cat", "model_name": 5}, 400, 1201)


# -- pools and packs (kling-api.md 7.1; kling-api-more-kinds.md 13) ----------------------------


@pytest.mark.parametrize("emulator_options", [{"slot_limit": {"video": 1, "try-on": 0}}])
async def test_slot_limits_per_pack(api: Any) -> None:
    await made(api, T2V, {"prompt": "x"})
    await refused(api, I2V, {"image": URL}, 429, 1303)
    await refused(api, TRY_ON, {"human_image": URL}, 429, 1303)
    await made(api, IMAGES, {"prompt": "x", "n": 9})  # no image limit given: unlimited
    assert api.emu.pack_slots_in_use("image") == 9
    assert api.emu.pack_slots_in_use("video") == 1


@pytest.mark.parametrize("emulator_options", [{"packs": {"video": 2.0, "image": 1.0}}])
async def test_each_pack_type_has_its_own_balance(api: Any) -> None:
    await made(api, IMAGES, {"prompt": "x"})
    await refused(api, IMAGES, {"prompt": "x"}, 429, 1102)
    await made(api, T2V, {"prompt": "x"})  # the video pack is untouched by images
    await refused(api, TRY_ON, {"human_image": URL}, 429, 1102)  # no try-on pack at all
    assert api.emu.pack_balances == {"video": 1.0, "image": 0.0}
    assert api.emu.balance == 1.0


def test_one_balance_or_packs_not_both() -> None:
    from kling_async.testing import KlingEmulator

    with pytest.raises(ValueError, match="not both"):
        KlingEmulator(balance_units=1, packs={"video": 1})
    with pytest.raises(ValueError, match="packs keys"):
        KlingEmulator(packs={"audio": 1})
    with pytest.raises(ValueError, match="slot_limit"):
        KlingEmulator(slot_limit={"audio": 1})


# -- image checks (kling-api.md 5.2) ----------------------------------------------------------

BAD_IMAGES = [
    (png(299, 600), ">= 300"),
    (png(1000, 300), "aspect"),
    (jpeg(200, 400), ">= 300"),
    (b"GIF89a" + b"\x00" * 20, "format"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 4, "cannot be read"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 4, "cannot be read"),
]


@pytest.mark.parametrize("emulator_options", [{"check_images": "refuse"}])
@pytest.mark.parametrize(("raw", "why"), BAD_IMAGES)
async def test_refused_images_name_the_field_and_the_rule(api: Any, raw: bytes, why: str) -> None:
    message = await refused(api, I2V, {"image": URL, "image_tail": b64(raw)}, 400, 1201)
    assert message.startswith("image_tail:") and why in message


@pytest.mark.parametrize("emulator_options", [{"check_images": "refuse"}])
async def test_good_images_and_urls_pass_the_checks(api: Any) -> None:
    await made(api, I2V, {"image": b64(png(300, 750))})  # 1:2.5 exactly
    await made(api, I2V, {"image": b64(jpeg(1280, 720))})
    await made(api, TRY_ON, {"human_image": b64(png(512, 512)), "cloth_image": URL})
    await made(api, I2V, {"image": "https://img.example/tiny.gif"})  # URLs are not fetched
    # A few MB of base64 is a legal body (aiohttp's own default limit is 1 MB).
    body = json.dumps({"image": b64(png(400, 400) + b"\x00" * (2 * 1024 * 1024))}).encode()
    headers = {**api.headers(), "Content-Type": "application/json"}
    status, answer = await api.call("POST", I2V, data=io.BytesIO(body), headers=headers)
    assert (status, answer["code"]) == (200, 0), answer


def test_an_image_over_10_mb_is_refused() -> None:
    # Checked without a socket: 14 MB of base64 over loopback would cost a second per run.
    from kling_async.testing._images import image_problem

    big = png(400, 400) + b"\x00" * (10 * 1024 * 1024)
    assert "10 MB" in (image_problem({"input": {"image": b64(big)}}, ("input.image",)) or "")
    assert (
        image_problem({"input": {"image": b64(big[: 10 * 1024 * 1024])}}, ("input.image",)) is None
    )


@pytest.mark.parametrize("emulator_options", [{"check_images": "fail"}])
async def test_fail_reading_accepts_the_create_and_fails_the_task(
    api: Any, clock: FakeClock
) -> None:
    task_id = await made(api, TRY_ON, {"human_image": b64(png(100, 100))})
    await clock.advance(60)
    task = await api.call("GET", f"{TRY_ON}/{task_id}")
    assert task[1]["data"]["task_status"] == "failed"
    assert "Image pixel is invalid" in task[1]["data"]["task_status_msg"]


async def test_without_the_knob_bytes_are_not_inspected(api: Any) -> None:
    await made(api, I2V, {"image": b64(png(10, 10))})
