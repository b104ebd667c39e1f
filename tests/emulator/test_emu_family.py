"""The rest of the task family (kling-api.md 1.4, 5, 7.1, 8.11): text2video, image2video,
lip-sync, image generation and virtual try-on on the same machinery as video-extend, in both
flavours, plus the relay's generic poller."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from kling_async.clock import FakeClock
from kling_async.testing import Durations, Fault, KlingEmulator

URL = "https://img.example/person.png"
PATHS = {
    "text2video": "/v1/videos/text2video",
    "image2video": "/v1/videos/image2video",
    "video-extend": "/v1/videos/video-extend",
    "lip-sync": "/v1/videos/lip-sync",
    "image-generation": "/v1/images/generations",
    "virtual-try-on": "/v1/images/kolors-virtual-try-on",
}
NEW_KINDS = ["text2video", "image2video", "lip-sync", "image-generation", "virtual-try-on"]
WITH_EXTERNAL_IDS = ["text2video", "image2video", "image-generation"]
WITHOUT_EXTERNAL_IDS = ["lip-sync", "virtual-try-on"]
IMAGE_KINDS = {"image-generation", "virtual-try-on"}
# kling-api.md 8.11 (ComfyUI's estimates): the default total time of each kind, in seconds.
TYPICAL = {
    "text2video": 319.0,
    "image2video": 164.0,
    "video-extend": 320.0,
    "lip-sync": 455.0,
    "image-generation": 32.0,
    "virtual-try-on": 19.0,
}
FLAVOURS = ["official", "relay"]


def valid_body(emu: KlingEmulator, kind: str) -> dict[str, Any]:
    """A minimal valid create body of ``kind`` (lip-sync and extend get a fresh seed video)."""
    if kind == "text2video":
        return {"prompt": "a cat on a skateboard"}
    if kind == "image2video":
        return {"image": URL}
    if kind == "image-generation":
        return {"prompt": "a red fox"}
    if kind == "virtual-try-on":
        return {"human_image": URL}
    seed = emu.add_video(5.0)
    if kind == "video-extend":
        return {"video_id": seed.video_id, "task_id": seed.task_id}
    assert kind == "lip-sync"
    lip = {"mode": "text2video", "video_id": seed.video_id, "text": "hello", "voice_id": "v1"}
    return {"input": lip}


async def post(api: Any, kind: str, body: Any, *, flavour: str = "official") -> tuple[int, Any]:
    result: tuple[int, Any] = await api.call("POST", PATHS[kind], json=body, flavour=flavour)
    return result


async def made(api: Any, kind: str, body: Any, *, flavour: str = "official") -> dict[str, Any]:
    """Create and insist it worked; returns the create ``data``."""
    status, answer = await post(api, kind, body, flavour=flavour)
    assert (status, answer["code"]) == (200, 0), answer
    data: dict[str, Any] = answer["data"]
    return data


async def show(api: Any, kind: str, ident: str, *, flavour: str = "official") -> dict[str, Any]:
    status, answer = await api.call("GET", f"{PATHS[kind]}/{ident}", flavour=flavour)
    assert (status, answer["code"]) == (200, 0), answer
    data: dict[str, Any] = answer["data"]
    return data


async def listed(api: Any, kind: str, query: str = "", *, flavour: str = "official") -> list[str]:
    status, answer = await api.call("GET", PATHS[kind] + query, flavour=flavour)
    assert (status, answer["code"]) == (200, 0), answer
    return [task["task_id"] for task in answer["data"]]


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    async with http.get(url) as r:
        return r.status, r.content_type, await r.read()


# -- create, query, list ------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("kind", NEW_KINDS)
async def test_each_kind_is_created_and_queried_in_both_flavours(
    api: Any, kind: str, flavour: str
) -> None:
    status, answer = await post(api, kind, valid_body(api.emu, kind), flavour=flavour)
    assert (status, answer["code"], answer["message"]) == (200, 0, "SUCCEED")
    data = answer["data"]
    assert set(data) == {"task_id", "task_status", "task_info", "created_at", "updated_at"}
    assert data["task_status"] == "submitted"
    task_id = data["task_id"]
    assert api.emu.tasks[task_id].kind == kind
    seen = await show(api, kind, task_id, flavour=flavour)
    assert seen["task_id"] == task_id
    assert seen["task_status"] == "submitted"
    assert seen == await show(
        api, kind, task_id, flavour="relay" if flavour == "official" else "official"
    )
    assert seen == api.emu.task_json(task_id)
    assert api.emu.stats.requests[("POST", "create", 200)] == 1
    assert api.emu.stats.requests[("GET", "get", 200)] == 2


@pytest.mark.parametrize("kind", WITH_EXTERNAL_IDS)
async def test_query_by_external_task_id(api: Any, kind: str) -> None:
    body = {**valid_body(api.emu, kind), "external_task_id": f"order-{kind}"}
    created = await made(api, kind, body)
    assert created["task_info"] == {"external_task_id": f"order-{kind}"}
    seen = await show(api, kind, f"order-{kind}")
    assert seen["task_id"] == created["task_id"]
    assert seen["task_info"]["external_task_id"] == f"order-{kind}"
    assert await listed(api, kind, f"?external_task_id=order-{kind}") == [created["task_id"]]
    assert await listed(api, kind, "?external_task_id=nope", flavour="relay") == []
    # external ids are unique per account, across kinds
    other = "text2video" if kind != "text2video" else "image-generation"
    status, answer = await post(api, other, {**valid_body(api.emu, other), **body})
    api.assert_error(status, answer, 400, 1201)
    assert "external_task_id" in answer["message"]


@pytest.mark.parametrize("kind", WITHOUT_EXTERNAL_IDS)
async def test_kinds_without_external_ids_ignore_them(api: Any, kind: str) -> None:
    body = {**valid_body(api.emu, kind), "external_task_id": "mine"}
    created = await made(api, kind, body)
    assert created["task_info"].get("external_task_id") is None
    assert api.emu.tasks[created["task_id"]].external_task_id is None
    status, answer = await api.call("GET", f"{PATHS[kind]}/mine")
    api.assert_error(status, answer, 404, 1203)
    assert await listed(api, kind, "?external_task_id=mine") == []
    await made(api, kind, body)  # not recorded, so not a duplicate either


@pytest.mark.parametrize("kind", NEW_KINDS)
async def test_list_pages_newest_first_and_only_its_kind(
    api: Any, clock: FakeClock, kind: str
) -> None:
    other = "image-generation" if kind != "image-generation" else "virtual-try-on"
    await made(api, other, valid_body(api.emu, other))  # older, and of another kind
    await clock.advance(1)
    ids = []
    for _ in range(3):
        ids.append((await made(api, kind, valid_body(api.emu, kind)))["task_id"])
        await clock.advance(1)
    newest = ids[::-1]
    assert await listed(api, kind) == newest
    assert await listed(api, kind, "?pageNum=2&pageSize=2") == newest[2:]
    assert await listed(api, kind, "?pageSize=1", flavour="relay") == newest[:1]
    assert len(await listed(api, other)) == 1
    status, answer = await api.call("GET", PATHS[kind] + "?pageSize=501")
    api.assert_error(status, answer, 400, 1201)


async def test_a_body_that_is_not_an_object_is_1200_for_every_kind(api: Any) -> None:
    for kind in NEW_KINDS:
        for raw in (b"[1]", b"{nope", b'"x"'):
            status, answer = await api.call("POST", PATHS[kind], data=raw)
            api.assert_error(status, answer, 400, 1200)
    assert api.emu.stats.created == 0


# -- task life and results ------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*NEW_KINDS, "video-extend"])
async def test_default_durations_are_each_kinds_typical_time(
    api: Any, clock: FakeClock, kind: str
) -> None:
    task_id = (await made(api, kind, valid_body(api.emu, kind), flavour="relay"))["task_id"]
    empty = {"images": []} if kind in IMAGE_KINDS else {"videos": []}
    assert api.emu.task_json(task_id)["task_result"] == empty
    await clock.advance(5.0)
    assert api.emu.task_json(task_id)["task_status"] == "processing"
    await clock.advance(TYPICAL[kind] - 5.0 - 0.01)
    seen = api.emu.task_json(task_id)
    assert (seen["task_status"], seen["task_result"]) == ("processing", empty)
    await clock.advance(0.01)
    assert api.emu.task_json(task_id)["task_status"] == "succeed"


@pytest.mark.parametrize("kind", NEW_KINDS)
async def test_each_kind_succeeds_with_its_result_shape(
    api: Any, clock: FakeClock, kind: str
) -> None:
    task_id = (await made(api, kind, valid_body(api.emu, kind)))["task_id"]
    await clock.advance(TYPICAL[kind])
    seen = await show(api, kind, task_id)
    assert seen["task_status"] == "succeed"
    result = seen["task_result"]
    if kind in IMAGE_KINDS:
        assert set(result) == {"images"}
        (image,) = result["images"]
        assert set(image) == {"index", "url"}
        assert image["index"] == 0
        status, content_type, body = await fetch(api.http, image["url"])
        assert (status, content_type) == (200, "image/png")
        assert body.startswith(b"\x89PNG")
    else:
        assert set(result) == {"videos"}
        (video,) = result["videos"]
        assert set(video) == {"id", "url", "duration"}
        assert video["duration"] == "5"
        status, content_type, _ = await fetch(api.http, video["url"])
        assert (status, content_type) == (200, "video/mp4")


@pytest.mark.parametrize("kind", ["text2video", "image2video"])
@pytest.mark.parametrize("duration", ["5", "10"])
async def test_generated_video_lasts_the_requested_duration(
    api: Any, clock: FakeClock, kind: str, duration: str
) -> None:
    body = {**valid_body(api.emu, kind), "duration": duration}
    task_id = (await made(api, kind, body))["task_id"]
    await clock.advance(TYPICAL[kind])
    (video,) = (await show(api, kind, task_id))["task_result"]["videos"]
    assert video["duration"] == duration
    assert api.emu.tasks[task_id].result.duration == float(duration)


@pytest.mark.parametrize("count", [1, 4, 9])
async def test_image_generation_makes_n_images(api: Any, clock: FakeClock, count: int) -> None:
    task_id = (await made(api, "image-generation", {"prompt": "fox", "n": count}))["task_id"]
    await clock.advance(32)
    images = (await show(api, "image-generation", task_id))["task_result"]["images"]
    assert [image["index"] for image in images] == list(range(count))
    assert len({image["url"] for image in images}) == count
    for image in images:
        assert (await fetch(api.http, image["url"]))[0] == 200


async def test_image_generation_defaults_to_one_image(api: Any, clock: FakeClock) -> None:
    task_id = (await made(api, "image-generation", {"prompt": "fox"}))["task_id"]
    assert api.emu.tasks[task_id].slots == 1
    await clock.advance(32)
    assert len((await show(api, "image-generation", task_id))["task_result"]["images"]) == 1


async def test_image_urls_serve_until_purged_and_watermarks(api: Any, clock: FakeClock) -> None:
    body = {"prompt": "fox", "n": 2, "watermark_info": {"enabled": True}}
    task_id = (await made(api, "image-generation", body))["task_id"]
    assert (await fetch(api.http, api.emu.url + "/media/images/nope.png"))[0] == 404
    await clock.advance(32)
    seen = await show(api, "image-generation", task_id)
    assert seen["watermark_info"] == {"enabled": True}
    images = seen["task_result"]["images"]
    for image in images:
        assert image["watermark_url"] != image["url"]
        assert (await fetch(api.http, image["watermark_url"]))[:2] == (200, "image/png")
    not_png = images[0]["url"].removesuffix(".png") + ".jpg"
    assert (await fetch(api.http, not_png))[0] == 404
    await clock.advance(30 * 86_400 + 1)
    assert (await fetch(api.http, images[0]["url"]))[0] == 404
    assert api.emu.stats.requests[("GET", "media", 200)] == 2


async def test_image_media_does_not_exist_before_success(api: Any) -> None:
    task_id = (await made(api, "virtual-try-on", {"human_image": URL}))["task_id"]
    (image,) = api.emu.tasks[task_id].images
    url = api.emu.url + f"/media/images/{image.image_id}.png"
    assert (await fetch(api.http, url))[0] == 404


@pytest.mark.parametrize("kind", ["image-generation", "lip-sync"])
async def test_failed_tasks_of_other_kinds_produce_nothing(
    http: aiohttp.ClientSession, clock: FakeClock, kind: str
) -> None:
    async with KlingEmulator(clock=clock, failure_rate=1.0) as emu:
        body = valid_body(emu, kind)
        headers = {"Authorization": "Bearer emu-static-key"}
        async with http.post(emu.url + PATHS[kind], json=body, headers=headers) as r:
            task_id = (await r.json())["data"]["task_id"]
        await clock.advance(TYPICAL[kind])
        seen = emu.task_json(task_id)
        assert seen["task_status"] == "failed"
        assert seen["task_status_msg"]
        assert seen["task_result"] == ({"images": []} if kind in IMAGE_KINDS else {"videos": []})
        record = emu.tasks[task_id]
        assert (record.result, record.images) == (None, ())


# -- slots (kling-api.md 7.1) -----------------------------------------------------------------


@pytest.mark.parametrize("emulator_options", [{"slot_limit": 5, "durations": Durations(0, 10)}])
async def test_image_generation_holds_n_slots(api: Any, clock: FakeClock) -> None:
    await made(api, "image-generation", {"prompt": "fox", "n": 3})
    assert api.emu.slots_in_use == 3
    status, answer = await post(api, "image-generation", {"prompt": "fox", "n": 3})
    api.assert_error(status, answer, 429, 1303)
    await made(api, "image-generation", {"prompt": "fox", "n": 2})  # 3 + 2 = 5 fits
    assert api.emu.pack_slots_in_use("image") == 5
    status, answer = await post(api, "image-generation", valid_body(api.emu, "image-generation"))
    api.assert_error(status, answer, 429, 1303)
    # The video and try-on pools are counted apart (kling-api.md 7.1): still free.
    for kind in ("text2video", "virtual-try-on"):
        await made(api, kind, valid_body(api.emu, kind))
    assert api.emu.stats.created == 4
    assert api.emu.stats.max_slots_in_use == 7
    await clock.advance(10)
    assert api.emu.slots_in_use == 0
    await made(api, "image-generation", {"prompt": "fox", "n": 5})
    assert api.emu.slots_in_use == 5


@pytest.mark.parametrize("emulator_options", [{"slot_limit": 2, "durations": Durations(0, 10)}])
async def test_video_and_try_on_tasks_hold_one_slot_of_their_own_pool(api: Any) -> None:
    await made(api, "virtual-try-on", {"human_image": URL})
    await made(api, "virtual-try-on", {"human_image": URL})
    await made(api, "text2video", {"prompt": "x"})
    assert api.emu.pack_slots_in_use("try-on") == 2
    assert api.emu.pack_slots_in_use("video") == 1
    status, answer = await post(api, "virtual-try-on", {"human_image": URL})
    api.assert_error(status, answer, 429, 1303)
    await made(api, "image2video", {"image": URL})
    status, answer = await post(api, "text2video", {"prompt": "x"})
    api.assert_error(status, answer, 429, 1303)


@pytest.mark.parametrize("emulator_options", [{"slot_limit": 4}])
async def test_more_images_than_slots_is_always_1303(api: Any) -> None:
    status, answer = await post(api, "image-generation", {"prompt": "fox", "n": 5})
    api.assert_error(status, answer, 429, 1303)
    assert api.emu.slots_in_use == 0
    assert api.emu.stats.created == 0


# -- the relay's generic poller (kling-api.md 1.4) ---------------------------------------------

POLLER = {
    ("images", "generations"): "image-generation",
    ("videos", "text2video"): "text2video",
    ("videos", "image2video"): "image2video",
    ("videos", "lip-sync"): "lip-sync",
    ("images", "kolors-virtual-try-on"): "virtual-try-on",
    ("videos", "video-extend"): "video-extend",
}


async def test_generic_poller_answers_like_each_kinds_own_get(api: Any) -> None:
    for (action, action2), kind in POLLER.items():
        task_id = (await made(api, kind, valid_body(api.emu, kind), flavour="relay"))["task_id"]
        status, answer = await api.call("GET", f"/v1/{action}/{action2}/{task_id}", flavour="relay")
        assert (status, answer["code"]) == (200, 0)
        assert answer["data"] == await show(api, kind, task_id)


@pytest.mark.parametrize(
    ("action", "action2"),
    [
        ("images", "text2video"),
        ("videos", "generations"),
        ("videos", "kolors-virtual-try-on"),
        ("images", "lip-sync"),
        ("audio", "text-to-audio"),
        ("videos", "multi-elements"),  # not modelled (effects is, since issue 17)
    ],
)
async def test_generic_poller_wrong_pairs_are_1203(api: Any, action: str, action2: str) -> None:
    task_id = (await made(api, "text2video", {"prompt": "x"}, flavour="relay"))["task_id"]
    status, answer = await api.call("GET", f"/v1/{action}/{action2}/{task_id}", flavour="relay")
    api.assert_error(status, answer, 404, 1203)
    assert api.emu.stats.requests[("GET", "other", 404)] == 1


async def test_generic_poller_misses(api: Any) -> None:
    image_task = (await made(api, "image-generation", {"prompt": "x"}, flavour="relay"))["task_id"]
    # a right pair, but another kind's task: kinds do not mix
    status, answer = await api.call("GET", f"/v1/videos/text2video/{image_task}", flavour="relay")
    api.assert_error(status, answer, 404, 1203)
    status, answer = await api.call("GET", "/v1/images/generations/404404", flavour="relay")
    api.assert_error(status, answer, 404, 1203)
    status, answer = await api.call(
        "POST", f"/v1/images/generations/{image_task}", flavour="relay", json={}
    )
    api.assert_error(status, answer, 404, 1202)


# -- chains: generated videos are extendable and lip-syncable ----------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_text2video_result_is_extended_again_and_again(
    api: Any, clock: FakeClock, flavour: str
) -> None:
    t2v = (await made(api, "text2video", {"prompt": "a lighthouse"}, flavour=flavour))["task_id"]
    await clock.advance(TYPICAL["text2video"])
    (video,) = (await show(api, "text2video", t2v))["task_result"]["videos"]
    parent_task, parent_video, total = t2v, video, 5.0
    for _ in range(2):
        body = {"video_id": parent_video["id"], "task_id": parent_task}
        task_id = (await made(api, "video-extend", body, flavour=flavour))["task_id"]
        await clock.advance(TYPICAL["video-extend"])
        seen = await show(api, "video-extend", task_id, flavour=flavour)
        assert seen["task_info"]["parent_video"] == parent_video
        (extended,) = seen["task_result"]["videos"]
        assert 4.0 <= float(extended["duration"]) - total <= 5.0
        parent_task, parent_video, total = task_id, extended, float(extended["duration"])


async def test_an_unfinished_generation_cannot_be_extended(api: Any) -> None:
    t2v = (await made(api, "image2video", {"image": URL}))["task_id"]
    video_id = api.emu.tasks[t2v].result.video_id
    status, answer = await post(api, "video-extend", {"video_id": video_id})
    api.assert_error(status, answer, 400, 1201)
    assert "video_id" in answer["message"]


async def test_lip_sync_of_an_emulator_video(api: Any, clock: FakeClock) -> None:
    t2v = (await made(api, "text2video", {"prompt": "a talk", "duration": "10"}))["task_id"]
    await clock.advance(TYPICAL["text2video"])
    (source,) = (await show(api, "text2video", t2v))["task_result"]["videos"]
    lip = {"mode": "text2video", "video_id": source["id"], "text": "hi", "voice_id": "v1"}
    task_id = (await made(api, "lip-sync", {"input": lip}))["task_id"]
    seen = await show(api, "lip-sync", task_id)
    assert seen["task_info"] == {"parent_video": source}
    assert seen["task_result"] == {"videos": []}
    await clock.advance(TYPICAL["lip-sync"])
    seen = await show(api, "lip-sync", task_id)
    (synced,) = seen["task_result"]["videos"]
    assert synced["id"] not in (source["id"], task_id)
    assert synced["duration"] == source["duration"] == "10"
    assert seen["task_info"]["parent_video"] == source
    # kling-api.md 3.1: only text2video, image2video and extend results can be extended
    status, answer = await post(api, "video-extend", {"video_id": synced["id"]})
    api.assert_error(status, answer, 400, 1201)
    assert "lip-sync" in answer["message"]


async def test_lip_sync_by_url_of_an_emulator_video(api: Any, clock: FakeClock) -> None:
    seed = api.emu.add_video(7.5)
    lip = {"mode": "audio2video", "video_url": seed.url, "audio_type": "url", "audio_url": URL}
    task_id = (await made(api, "lip-sync", {"input": lip}))["task_id"]
    parent = (await show(api, "lip-sync", task_id))["task_info"]["parent_video"]
    assert parent == {"id": seed.video_id, "url": seed.url, "duration": "7.5"}
    await clock.advance(TYPICAL["lip-sync"])
    (synced,) = (await show(api, "lip-sync", task_id))["task_result"]["videos"]
    assert synced["duration"] == "7.5"


async def test_lip_sync_by_a_foreign_url_is_taken_on_trust(api: Any, clock: FakeClock) -> None:
    lip = {"mode": "text2video", "video_url": "https://cdn.example/a.mp4", "text": "hi"}
    task_id = (await made(api, "lip-sync", {"input": {**lip, "voice_id": "v"}}))["task_id"]
    assert api.emu.task_json(task_id)["task_info"] == {}
    await clock.advance(TYPICAL["lip-sync"])
    (synced,) = api.emu.task_json(task_id)["task_result"]["videos"]
    assert synced["duration"] == "5"


def lip_sync(video_id: str | None = None, video_url: str | None = None) -> dict[str, Any]:
    lip = {"mode": "text2video", "text": "hi", "voice_id": "v1"}
    lip.update({k: v for k, v in (("video_id", video_id), ("video_url", video_url)) if v})
    return {"input": lip}


async def test_lip_sync_source_rules(api: Any, clock: FakeClock) -> None:
    """An id: a known, generated, unpurged video of at most 60 s; an emulator URL: 2-60 s."""
    cases = [
        (lip_sync(video_id=api.emu.add_video(60.5).video_id), "input.video_id"),
        (lip_sync(video_id="no-such-video"), "input.video_id"),
        (lip_sync(video_id=api.emu.add_video().task_id), "input.video_id"),  # a task id
        (lip_sync(video_id=api.emu.add_video(age=30 * 86_400 + 1).video_id), "input.video_id"),
        (lip_sync(video_url=api.emu.add_video(1.5).url), "input.video_url"),
        (lip_sync(video_url=api.emu.add_video(61.0).url), "input.video_url"),
        (lip_sync(video_url=api.emu.url + "/media/videos/unknown.mp4"), "input.video_url"),
    ]
    for body, field in cases:
        status, answer = await post(api, "lip-sync", body)
        api.assert_error(status, answer, 400, 1201)
        assert field in answer["message"], (body, answer)
    assert api.emu.stats.created == 0
    await made(api, "lip-sync", lip_sync(video_id=api.emu.add_video(60.0).video_id))
    await made(api, "lip-sync", lip_sync(video_url=api.emu.add_video(2.0).url))
    # a watermarked copy's URL is not the video itself: taken on trust like a foreign URL
    watermarked = api.emu.add_video(1.0).url.removesuffix(".mp4") + ".wm.mp4"
    task_id = (await made(api, "lip-sync", lip_sync(video_url=watermarked)))["task_id"]
    assert api.emu.tasks[task_id].parent is None


# -- callbacks, faults and durations apply to every kind ----------------------------------------


async def test_callbacks_carry_images_for_image_tasks(
    api: Any, clock: FakeClock, receiver: Any
) -> None:
    body = {"prompt": "fox", "n": 2, "callback_url": receiver.url}
    task_id = (await made(api, "image-generation", body))["task_id"]
    await api.emu.flush_callbacks()
    await clock.advance(32)
    await api.emu.flush_callbacks()
    payloads = [json.loads(raw) for _, raw in receiver.received]
    assert [p["task_status"] for p in payloads] == ["submitted", "processing", "succeed"]
    assert all(p["task_id"] == task_id for p in payloads)
    assert payloads[-1] == api.emu.task_json(task_id)
    assert [i["index"] for i in payloads[-1]["task_result"]["images"]] == [0, 1]


@pytest.mark.parametrize("kind", NEW_KINDS)
async def test_faults_hit_every_kinds_routes(api: Any, kind: str) -> None:
    api.emu.fault(Fault.SERVER_5001, route="create")
    status, answer = await post(api, kind, valid_body(api.emu, kind), flavour="relay")
    api.assert_error(status, answer, 503, 5001)
    assert api.emu.stats.created == 0
    api.emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await post(api, kind, valid_body(api.emu, kind))
    (task_id,) = [t for t, r in api.emu.tasks.items() if r.kind == kind and r.body]
    api.emu.fault(Fault.UNKNOWN_STATUS, route="get")
    assert (await show(api, kind, task_id))["task_status"] == "queued"
    api.emu.fault(Fault.SERVER_5000, route="list")
    status, answer = await api.call("GET", PATHS[kind])
    api.assert_error(status, answer, 500, 5000)
    requests = api.emu.stats.requests
    assert (requests[("POST", "create", 503)], requests[("POST", "create", 0)]) == (1, 1)
    assert (requests[("GET", "get", 200)], requests[("GET", "list", 500)]) == (1, 1)


def test_durations_know_the_kind() -> None:
    typical = Durations.typical()
    assert {kind: typical.draw({}, kind) for kind in TYPICAL} == {
        kind: (5.0, total - 5.0) for kind, total in TYPICAL.items()
    }
    assert typical.draw({}) == (5.0, 315.0)  # video-extend unless told
    assert Durations().draw({}, "image-generation") == (5.0, 315.0)  # fixed: every kind
    mixed = Durations.per_kind(
        {"image-generation": Durations(1, 2), "lip-sync": Durations.per_task(lambda b: (0, 7))}
    )
    assert mixed.draw({}, "image-generation") == (1.0, 2.0)
    assert mixed.draw({"x": 1}, "lip-sync") == (0.0, 7.0)
    assert mixed.draw({}, "text2video") == (5.0, 314.0)  # the default default: typical
    assert Durations.per_kind({}, Durations(0, 1)).draw({}, "text2video") == (0.0, 1.0)


async def test_per_kind_durations_drive_the_emulator(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    quick_images = Durations.per_kind({"image-generation": Durations(0, 1)}, Durations(0, 100))
    async with KlingEmulator(clock=clock, durations=quick_images) as emu:
        headers = {"Authorization": "Bearer emu-static-key"}
        ids = []
        for kind in ("image-generation", "text2video"):
            async with http.post(
                emu.url + PATHS[kind], json=valid_body(emu, kind), headers=headers
            ) as r:
                ids.append((await r.json())["data"]["task_id"])
        await clock.advance(1)
        assert [emu.task_json(i)["task_status"] for i in ids] == ["succeed", "processing"]
