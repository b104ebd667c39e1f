"""Task life on the clock: create answers, statuses, results, failures, chains, durations."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from kling_async.clock import FakeClock, ScaledClock
from kling_async.testing import Durations, KlingEmulator

T0 = 1_700_000_000_000  # FakeClock's default start, in ms


async def test_create_answer_has_exactly_the_documented_fields(api: Any) -> None:
    seed = api.emu.add_video()
    status, answer = await api.create({"video_id": seed.video_id, "external_task_id": "ext-1"})
    assert status == 200
    assert (answer["code"], answer["message"]) == (0, "SUCCEED")
    data = answer["data"]
    assert set(data) == {"task_id", "task_status", "task_info", "created_at", "updated_at"}
    assert re.fullmatch(r"[1-9]\d{17}", data["task_id"])
    assert data["task_status"] == "submitted"
    assert data["task_info"] == {"external_task_id": "ext-1"}
    assert data["created_at"] == data["updated_at"] == T0
    assert api.emu.stats.created == 1


async def test_task_lives_submitted_processing_succeed(api: Any, clock: FakeClock) -> None:
    seed = api.emu.add_video(5.0)
    task_id = (await api.created({"video_id": seed.video_id}))["task_id"]

    seen = await api.task(task_id)
    assert (seen["task_status"], seen["updated_at"]) == ("submitted", T0)
    assert seen["task_result"] == {"videos": []}

    await clock.advance(5.0)
    seen = await api.task(task_id)
    assert (seen["task_status"], seen["updated_at"]) == ("processing", T0 + 5_000)

    await clock.advance(314.9)
    assert (await api.task(task_id))["task_status"] == "processing"

    await clock.advance(0.1)
    seen = await api.task(task_id)
    assert (seen["task_status"], seen["task_status_msg"]) == ("succeed", "")
    assert (seen["created_at"], seen["updated_at"]) == (T0, T0 + 320_000)
    assert seen["task_info"]["parent_video"] == {
        "id": seed.video_id,
        "url": seed.url,
        "duration": "5",
    }
    (video,) = seen["task_result"]["videos"]
    assert set(video) == {"id", "url", "duration"}
    assert video["id"] not in (seed.video_id, task_id)
    assert video["url"].startswith(api.emu.url)
    assert 9.0 <= float(video["duration"]) <= 10.0
    assert isinstance(video["duration"], str)
    assert seen["watermark_info"] == {"enabled": False}
    assert seen["final_unit_deduction"] == "1"
    assert api.emu.task_json(task_id) == seen


async def test_relay_flavour_sees_the_same_task(api: Any) -> None:
    seed = api.emu.add_video()
    body = {"video_id": seed.video_id, "task_id": seed.task_id}
    task_id = (await api.created(body, flavour="relay"))["task_id"]
    assert (await api.task(task_id, flavour="relay")) == (await api.task(task_id))


async def test_failed_tasks_are_http_200_code_0_with_a_reason(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    def veto(body: dict[str, Any]) -> str | None:
        return "Image pixel is invalid" if body.get("prompt") == "bad" else None

    async with KlingEmulator(clock=clock, fail_when=veto) as emu:
        seed = emu.add_video()
        headers = {"Authorization": "Bearer emu-static-key"}
        url = emu.url + "/v1/videos/video-extend"
        ids = []
        for prompt in ("bad", "good"):
            async with http.post(
                url, json={"video_id": seed.video_id, "prompt": prompt}, headers=headers
            ) as r:
                ids.append((await r.json())["data"]["task_id"])
        await clock.advance(320)
        async with http.get(f"{url}/{ids[0]}", headers=headers) as r:
            answer = await r.json()
        assert (r.status, answer["code"], answer["message"]) == (200, 0, "SUCCEED")
        failed = answer["data"]
        assert failed["task_status"] == "failed"
        assert failed["task_status_msg"] == "Image pixel is invalid"
        assert failed["task_result"] == {"videos": []}
        assert emu.task_json(ids[1])["task_status"] == "succeed"


def outcomes(emu: KlingEmulator) -> list[tuple[str, str]]:
    return [(t.task_id, t.failure or "") for t in emu.tasks.values() if t.kind == "video-extend"]


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
async def test_failure_rate_is_seeded(http: aiohttp.ClientSession, rate: float) -> None:
    runs = []
    for _ in range(2):
        async with KlingEmulator(clock=FakeClock(), failure_rate=rate, seed=7) as emu:
            seed = emu.add_video(task_id="100000000000000001", video_id="v-1")
            headers = {"Authorization": "Bearer emu-static-key"}
            for _ in range(20):
                async with http.post(
                    emu.url + "/v1/videos/video-extend",
                    headers=headers,
                    json={"video_id": seed.video_id},
                ) as r:
                    assert r.status == 200
            runs.append(outcomes(emu))
    assert runs[0] == runs[1]
    failed = sum(1 for _, reason in runs[0] if reason)
    assert failed == {0.0: 0, 1.0: 20}.get(rate, failed)
    if rate == 0.5:
        assert 3 <= failed <= 17


async def test_watermark_adds_watermark_url(api: Any, clock: FakeClock) -> None:
    seed = api.emu.add_video()
    body = {"video_id": seed.video_id, "watermark_info": {"enabled": True}}
    task_id = (await api.created(body))["task_id"]
    await clock.advance(320)
    seen = await api.task(task_id)
    assert seen["watermark_info"] == {"enabled": True}
    (video,) = seen["task_result"]["videos"]
    assert video["watermark_url"].startswith(api.emu.url)
    assert video["watermark_url"] != video["url"]


async def test_results_can_be_extended_again_as_a_chain(api: Any, clock: FakeClock) -> None:
    seed = api.emu.add_video(5.0)
    parent_video, parent_task, total = seed.video_id, seed.task_id, 5.0
    for _ in range(3):
        body = {"video_id": parent_video, "task_id": parent_task}
        task_id = (await api.created(body, flavour="relay"))["task_id"]
        await api.created(body, flavour="relay")  # the same parent may be extended twice
        await clock.advance(320)
        (video,) = (await api.task(task_id))["task_result"]["videos"]
        assert 4.0 <= float(video["duration"]) - total <= 5.0
        parent_video, parent_task, total = video["id"], task_id, float(video["duration"])


async def test_get_by_external_task_id_in_the_path(api: Any) -> None:
    seed = api.emu.add_video()
    created = await api.created({"video_id": seed.video_id, "external_task_id": "order-42"})
    seen = await api.task("order-42")
    assert seen["task_id"] == created["task_id"]
    assert seen["task_info"]["external_task_id"] == "order-42"


async def test_task_ids_win_over_external_ids(api: Any) -> None:
    seed = api.emu.add_video()
    first = await api.created({"video_id": seed.video_id})
    # Another task whose external id is the first task's id: the path still means the first.
    await api.created({"video_id": seed.video_id, "external_task_id": first["task_id"]})
    assert (await api.task(first["task_id"]))["task_id"] == first["task_id"]


async def test_unknown_task_is_404_1203(api: Any) -> None:
    status, answer = await api.get("123456789012345678")
    api.assert_error(status, answer, 404, 1203)


async def test_seeded_parent_is_a_text2video_task(api: Any) -> None:
    seed = api.emu.add_video(7.5)
    status, answer = await api.call("GET", f"/v1/videos/text2video/{seed.task_id}")
    assert status == 200
    data = answer["data"]
    assert data["task_status"] == "succeed"
    assert data["task_result"]["videos"] == [
        {"id": seed.video_id, "url": seed.url, "duration": "7.5"}
    ]
    # Kinds do not mix: an extend route does not show a text2video task.
    status, answer = await api.get(seed.task_id)
    api.assert_error(status, answer, 404, 1203)


async def test_video_urls_serve_bytes_until_purged(api: Any, clock: FakeClock) -> None:
    seed = api.emu.add_video()
    async with api.http.get(seed.url) as r:
        assert (r.status, r.content_type) == (200, "video/mp4")
        assert seed.video_id.encode() in await r.read()
    async with api.http.get(api.emu.url + "/media/videos/nope.mp4") as r:
        assert r.status == 404
    await clock.advance(30 * 86400 + 1)
    async with api.http.get(seed.url) as r:
        assert r.status == 404


async def test_durations_fixed_per_task_and_random(api: Any, clock: FakeClock) -> None:
    assert Durations(1, 2).draw({}) == (1.0, 2.0)
    per_task = Durations.per_task(lambda body: (0.0, float(len(body.get("prompt", "")))))
    assert per_task.draw({"prompt": "abc"}) == (0.0, 3.0)
    draws = [Durations.random(100, 10, 2, seed=3).draw({}) for _ in range(2)]
    assert draws[0] == draws[1]
    sample = Durations.random(100, 10, 2, seed=3)
    for _ in range(50):
        queued, running = sample.draw({})
        assert queued == 2
        assert 90 <= running <= 110
    with pytest.raises(ValueError, match=">= 0"):
        Durations(-1, 0)
    with pytest.raises(ValueError, match=">= 0"):
        Durations.per_task(lambda body: (0.0, -1.0)).draw({})


async def test_per_task_durations_drive_the_life(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    quick = Durations.per_task(lambda body: (1.0, 10.0 if body.get("prompt") else 2.0))
    async with KlingEmulator(clock=clock, durations=quick) as emu:
        seed = emu.add_video()
        headers = {"Authorization": "Bearer emu-static-key"}
        ids = []
        for body in ({"video_id": seed.video_id}, {"video_id": seed.video_id, "prompt": "slow"}):
            async with http.post(
                emu.url + "/v1/videos/video-extend", json=body, headers=headers
            ) as r:
                ids.append((await r.json())["data"]["task_id"])
        await clock.advance(3)
        assert [emu.task_json(i)["task_status"] for i in ids] == ["succeed", "processing"]


async def test_scaled_clock_runs_a_whole_extend_in_a_blink(http: aiohttp.ClientSession) -> None:
    async with KlingEmulator(clock=ScaledClock(2000)) as emu:
        seed = emu.add_video()
        async with http.post(
            emu.url + "/v1/videos/video-extend",
            json={"video_id": seed.video_id},
            headers={"Authorization": "Bearer emu-static-key"},
        ) as r:
            created = (await r.json())["data"]
        # The answer shows the task at its creation: its 5 queued seconds last 2.5 real ms
        # here, less than a loaded machine's round trip, so a second read could be late.
        task_id = created["task_id"]
        assert created["task_status"] == "submitted"
        await emu.clock.sleep(321)  # 0.16 real seconds
        assert emu.task_json(task_id)["task_status"] == "succeed"
