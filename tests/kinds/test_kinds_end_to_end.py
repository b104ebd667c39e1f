"""Every later kind (kling-api-more-kinds.md §2-§9) end to end over the emulator, in both
flavours: create, wait, and the result's shape (videos, images, a parent video)."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import attrs
import pytest

from kling_async import FakeClock, RequestValidationError, TaskStatus
from kling_async.requests import EffectInput, EffectsRequest, OmniVideoRequest
from kling_async.requests.fields import build_request
from kling_async.serde import request_from_wire, unstructure_request
from kling_async.testing import Durations

from ..conftest import MakeClient, MakeEmulator, created
from ..watching import run_batch, run_clock
from .common import IMAGE_KINDS, KINDS, PNG, finish, simple_requests


@pytest.mark.parametrize("flavour", ["jwt", "relay"])
@pytest.mark.parametrize("kind", KINDS)
async def test_each_kind_is_created_watched_and_finished(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, flavour: str, kind: str
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    kling = make_client(emu, flavour)
    seed = emu.add_video(duration=6.0)
    session = await kling.identify_face(seed.video_id)
    request = simple_requests(session.session_id)[kind]
    task = await kling.create(request)
    assert task.kind == kind and task.task_status is TaskStatus.SUBMITTED
    assert emu.tasks[task.task_id].kind == kind
    done = await finish(clock, kling, task)
    assert done.task_status is TaskStatus.SUCCEED and done.kind == kind
    if kind in IMAGE_KINDS:
        assert [i.index for i in done.task_result.images] == list(range(IMAGE_KINDS[kind]))
        assert all(i.url for i in done.task_result.images) and not done.videos
    else:
        assert done.video is not None and done.video.url and not done.task_result.images
    if kind == "advanced-lip-sync":  # as long as the identified video, which it shows
        assert done.task_info.parent_video is not None
        assert done.task_info.parent_video.id == seed.video_id
        assert done.video is not None and done.video.duration == 6.0
    if kind == "multi-image2video":
        assert done.video is not None and done.video.duration == 10.0
    listed = [t async for page in kling.list_tasks(kind) for t in page]
    assert [t.task_id for t in listed] == [task.task_id]


@pytest.mark.parametrize("kind", KINDS)
def test_each_request_goes_out_and_comes_back_from_a_journal_unchanged(kind: str) -> None:
    request = simple_requests("s-1")[kind]
    body = unstructure_request(request)
    assert request_from_wire(kind, body) == request
    assert None not in body.values()


def test_bodies_follow_the_wire() -> None:
    requests = simple_requests("s-1")
    assert unstructure_request(requests["multi-image2video"])["image_list"] == [
        {"image": PNG},
        {"image": PNG},
    ]
    expand = unstructure_request(requests["image-expand"])
    # every side is sent (the API wants all four), 0 where none was given
    assert expand["up_expansion_ratio"] == 0.0 and expand["left_expansion_ratio"] == 0.5
    effects = unstructure_request(requests["effects"])
    assert effects == {"effect_scene": "squish", "input": {"image": PNG}}


async def test_the_shortcuts_build_each_kind(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    seed = emu.add_video(duration=5.0)
    faces = await kling.identify_face(seed.video_id)
    sound = {"sound_file": PNG, "sound_start_time": 0, "sound_end_time": 2000}
    tasks = [
        await kling.multi_image_to_video([PNG, PNG], "two cats"),
        await kling.omni_video("a storm", aspect_ratio="1:1", sound="on"),
        await kling.video_effects("hug_pro", {"images": [PNG, PNG]}),
        await kling.expand_image(PNG, up_expansion_ratio=1.0),
        await kling.multi_image_to_image([PNG, PNG], prompt="both"),
        await kling.advanced_lip_sync(
            faces, [{"face_id": faces.faces[0].face_id, "sound_insert_time": 1000, **sound}]
        ),
        await kling.avatar(PNG, sound_file=PNG),
        await kling.motion_control(
            PNG, "https://v.example/a.mp4", character_orientation="image", mode="pro"
        ),
    ]
    assert [t.kind for t in tasks] == KINDS
    bodies = [emu.tasks[t.task_id].body for t in tasks]
    assert bodies[0]["image_list"] == [{"image": PNG}, {"image": PNG}]
    assert bodies[1]["sound"] == "on"
    assert bodies[2]["input"] == {"images": [PNG, PNG]}
    assert bodies[3]["up_expansion_ratio"] == 1.0 and bodies[3]["down_expansion_ratio"] == 0.0
    assert bodies[4]["subject_image_list"] == [{"subject_image": PNG}] * 2
    assert bodies[5]["session_id"] == faces.session_id
    assert bodies[6]["sound_file"] == PNG and "audio_id" not in bodies[6]
    assert bodies[7]["mode"] == "pro"
    # advanced-lip-sync documents no query by external_task_id: the client adds none
    assert ["external_task_id" in b for b in bodies] == [True] * 5 + [False] + [True] * 2


async def test_a_video_is_extended_through_omni_video(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """kling-api-more-kinds.md §3.3: the video as a feature reference, "generate the next
    shot"; the result is a new video (the new shot), not the whole continued one."""
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    kling = make_client(emu)
    first = await finish(clock, kling, await kling.omni_video("a fox", aspect_ratio="16:9"))
    task = await kling.extend_with_omni(first, aspect_ratio="16:9", keep_original_sound=True)
    body = emu.tasks[task.task_id].body
    assert first.video is not None
    assert body["video_list"] == [
        {"video_url": first.video.url, "refer_type": "feature", "keep_original_sound": "yes"}
    ]
    assert body["prompt"] == "Based on <<<video_1>>>, generate the next shot"
    done = await finish(clock, kling, task)
    assert done.video is not None and done.video.id != first.video.id
    before = OmniVideoRequest.extension_of(first.video, previous=True, aspect_ratio="9:16")
    assert before.prompt == "Based on <<<video_1>>>, generate the previous shot"


async def test_a_base_video_edit_is_as_long_as_the_video(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    kling = make_client(emu)
    source = await finish(clock, kling, await kling.omni_video("x", aspect_ratio="1:1", duration=7))
    assert source.video is not None and source.video.duration == 7.0
    edit = await kling.omni_video("make it snow", video_list=[source.video.url])
    done = await finish(clock, kling, edit)
    assert done.video is not None and done.video.duration == 7.0


async def test_a_batch_of_mixed_kinds(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    kling = make_client(emu)
    seed = emu.add_video()
    rows: list[Any] = [
        {"kind": "effects", "effect_scene": "squish", "input": {"image": PNG}},
        {"kind": "image-expand", "image": PNG, "down_expansion_ratio": 0.5, "n": 2},
        {"kind": "multi-image2video", "image_list": [PNG], "prompt": "one"},
        {
            "kind": "motion-control",
            "image_url": PNG,
            "video_url": "https://v.example/m.mp4",
            "character_orientation": "video",
            "mode": "std",
        },
        simple_requests()["avatar"],
        {"video_id": seed.video_id},  # video-extend by default
    ]
    outcomes = await run_batch(clock, kling, kling.extend_many(rows, slots=3), step=5.0)
    assert collections.Counter(o.outcome for o in outcomes) == {"succeed": 6}
    assert sorted(o.request.kind for o in outcomes) == sorted(
        ["effects", "image-expand", "multi-image2video", "motion-control", "avatar", "video-extend"]
    )
    expanded = next(o for o in outcomes if o.request.kind == "image-expand")
    assert expanded.task is not None and len(expanded.task.task_result.images) == 2
    assert created(emu) == 6


def test_requests_are_frozen_and_compare_by_value() -> None:
    a, b = simple_requests("s")["omni-video"], simple_requests("s")["omni-video"]
    assert a == b and hash(a) == hash(b)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.prompt = "x"  # type: ignore[misc]


async def test_image_kinds_hold_one_slot_per_image(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    # Inferred for expand and multi-image2image from the image rule (§13), at both ends: the
    # client's gate (4 slots) sends the second 3-image create only once the first has ended.
    emu = await make_emulator(durations=Durations(queued=2, running=30), slot_limit=4)
    kling = make_client(emu, slots=4)

    async def make(kind: str, **fields: Any) -> Any:
        return await kling.wait(await kling.create(build_request(kind, fields)))

    both = asyncio.gather(
        make("image-expand", image=PNG, up_expansion_ratio=0.5, n=3),
        make("multi-image2image", subject_image_list=[PNG], n=3),
    )
    await run_clock(clock, kling, both.done, step=5.0)
    assert [len(t.task_result.images) for t in await both] == [3, 3]
    assert emu.stats.max_slots_in_use == 3
    assert emu.stats.requests[("POST", "create", 429)] == 0, emu.stats.requests  # no 1303


async def test_a_batch_of_image_kinds_holds_one_slot_per_image_too(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    # As single creates do: a batch of 3-image creates on 4 slots sends one at a time, and the
    # server never refuses one with 1303 (at one slot per create it sent four at once).
    emu = await make_emulator(durations=Durations(queued=2, running=30), slot_limit=4)
    kling = make_client(emu, slots=4)
    rows = [
        {"kind": "image-expand", "image": PNG, "up_expansion_ratio": 0.5, "n": 3},
        {"kind": "multi-image2image", "subject_image_list": [PNG], "n": 3},
        {"kind": "image-generation", "prompt": "a harbour at dusk", "n": 3},
    ]

    async def drain() -> list[Any]:
        return [outcome async for outcome in kling.extend_many(rows)]

    job = asyncio.ensure_future(drain())
    await run_clock(clock, kling, job.done, step=5.0)
    outcomes = await job
    assert sorted(o.outcome for o in outcomes) == ["succeed"] * 3
    assert emu.stats.max_slots_in_use == 3
    assert emu.stats.requests[("POST", "create", 429)] == 0, emu.stats.requests  # no 1303


def test_request_objects_take_mappings_for_their_nested_parts() -> None:
    effects = EffectsRequest(effect_scene="hug_pro", input={"images": [PNG, PNG]})
    assert effects.input == EffectInput(images=(PNG, PNG))
    with pytest.raises(RequestValidationError) as caught:
        EffectsRequest(effect_scene="squish", input={"picture": PNG})
    assert caught.value.field == "input" and "picture" in str(caught.value)
    with pytest.raises(RequestValidationError) as caught:
        EffectsRequest(effect_scene="squish", input=PNG)  # type: ignore[arg-type]
    assert caught.value.field == "input"
    omni = OmniVideoRequest(prompt="p", aspect_ratio="1:1", image_list=[{"image_url": PNG}])
    assert omni.image_list is not None and omni.image_list[0].image_url == PNG
