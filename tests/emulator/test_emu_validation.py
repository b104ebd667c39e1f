"""Create-body rules (kling-api.md 3.1/3.2): refusals are 1200/1201, name the field, and
create nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from kling_async.clock import FakeClock
from kling_async.testing import KlingEmulator

DAY = 86_400.0


async def refused(api: Any, body: Any, *, code: int = 1201, flavour: str = "official") -> str:
    """Post ``body``; insist on a 400 with ``code``, nothing created; return the message."""
    before = (api.emu.stats.created, len(api.emu.tasks))
    status, answer = await api.create(body, flavour=flavour)
    api.assert_error(status, answer, 400, code)
    assert (api.emu.stats.created, len(api.emu.tasks)) == before
    message: str = answer["message"]
    return message


async def test_body_must_be_a_json_object(api: Any) -> None:
    for raw in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b""):
        status, answer = await api.call("POST", "/v1/videos/video-extend", data=raw)
        api.assert_error(status, answer, 400, 1200)
    assert api.emu.stats.created == 0


async def test_video_id_is_required(api: Any) -> None:
    for body in ({}, {"video_id": ""}, {"video_id": None}, {"prompt": "x"}):
        assert "video_id" in await refused(api, body)
    assert "video_id" in await refused(api, {"video_id": 12345})


async def test_video_id_must_name_an_existing_video(api: Any) -> None:
    seed = api.emu.add_video()
    assert "video_id" in await refused(api, {"video_id": "no-such-video"})
    # A task id is not a video id (gotcha 8.3).
    assert "video_id" in await refused(api, {"video_id": seed.task_id})


async def test_videos_older_than_30_days_are_purged(api: Any, clock: FakeClock) -> None:
    fresh = api.emu.add_video(age=30 * DAY - 10)
    stale = api.emu.add_video(age=30 * DAY + 1)
    assert "video_id" in await refused(api, {"video_id": stale.video_id})
    await api.created({"video_id": fresh.video_id})
    await clock.advance(11)
    assert "video_id" in await refused(api, {"video_id": fresh.video_id})


async def test_results_are_extendable_only_once_generated(api: Any, clock: FakeClock) -> None:
    seed = api.emu.add_video()
    task_id = (await api.created({"video_id": seed.video_id}))["task_id"]
    result_id = api.emu.tasks[task_id].result.video_id
    assert "video_id" in await refused(api, {"video_id": result_id})
    await clock.advance(320)
    await api.created({"video_id": result_id})


async def test_extension_must_stay_within_three_minutes(api: Any) -> None:
    await api.created({"video_id": api.emu.add_video(175.0).video_id})
    too_long = api.emu.add_video(175.5)
    assert "video_id" in await refused(api, {"video_id": too_long.video_id})


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
async def test_prompts_are_at_most_2500_characters(api: Any, field: str) -> None:
    video_id = api.emu.add_video().video_id
    await api.created({"video_id": video_id, field: "x" * 2500})
    assert field in await refused(api, {"video_id": video_id, field: "x" * 2501})
    assert field in await refused(api, {"video_id": video_id, field: 42})


async def test_cfg_scale_is_a_number_in_0_1(api: Any) -> None:
    video_id = api.emu.add_video().video_id
    for good in (0, 0.5, 1, 1.0):
        await api.created({"video_id": video_id, "cfg_scale": good})
    for bad in (-0.01, 1.01, "0.5", True, [0.5]):
        assert "cfg_scale" in await refused(api, {"video_id": video_id, "cfg_scale": bad})


async def test_external_task_id_must_be_unique(api: Any) -> None:
    video_id = api.emu.add_video().video_id
    await api.created({"video_id": video_id, "external_task_id": "job-1"})
    assert "external_task_id" in await refused(
        api, {"video_id": video_id, "external_task_id": "job-1"}
    )
    assert "external_task_id" in await refused(api, {"video_id": video_id, "external_task_id": 7})


async def test_callback_url_and_watermark_info_shapes(api: Any) -> None:
    video_id = api.emu.add_video().video_id
    bad_urls: list[Any] = ["ftp://x", "not a url", 5]
    for bad in bad_urls:
        assert "callback_url" in await refused(api, {"video_id": video_id, "callback_url": bad})
    bad_watermarks: list[Any] = [True, {"enabled": "yes"}, "on"]
    for bad in bad_watermarks:
        assert "watermark_info" in await refused(api, {"video_id": video_id, "watermark_info": bad})


async def test_official_flavour_ignores_unknown_fields_like_task_id(api: Any) -> None:
    video_id = api.emu.add_video().video_id
    await api.created({"video_id": video_id, "task_id": "not-the-parent", "model_name": "x"})


async def test_relay_flavour_requires_the_parent_task_id(api: Any) -> None:
    seed = api.emu.add_video()
    other = api.emu.add_video()
    assert "task_id" in await refused(api, {"video_id": seed.video_id}, flavour="relay")
    assert "task_id" in await refused(
        api, {"video_id": seed.video_id, "task_id": other.task_id}, flavour="relay"
    )
    await api.created({"video_id": seed.video_id, "task_id": seed.task_id}, flavour="relay")


async def test_relay_parent_rule_can_be_switched_off(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with KlingEmulator(clock=clock, require_relay_parent=False) as emu:
        seed = emu.add_video()
        async with http.post(
            emu.relay_url + "/v1/videos/video-extend",
            json={"video_id": seed.video_id},
            headers={"Authorization": "Bearer sk-emu-relay"},
        ) as r:
            assert (r.status, (await r.json())["code"]) == (200, 0)


async def test_add_video_rejects_nonsense(emu: KlingEmulator) -> None:
    seed = emu.add_video()
    with pytest.raises(ValueError, match="duration"):
        emu.add_video(0)
    with pytest.raises(ValueError, match="age"):
        emu.add_video(age=-1)
    with pytest.raises(ValueError, match="in use"):
        emu.add_video(video_id=seed.video_id)


def test_add_video_needs_a_running_emulator() -> None:
    with pytest.raises(RuntimeError, match="not been started"):
        KlingEmulator().add_video()
