"""The rest of the task family on the same machinery: create, get, watch, batch, lost answers,
chains, in both flavours."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest

from kling_async import (
    AmbiguousSubmitError,
    FakeClock,
    InvalidRequestError,
    KlingClient,
    RequestValidationError,
    Task,
    TaskStatus,
)
from kling_async.batch import Outcome
from kling_async.requests import (
    CameraConfig,
    CameraControl,
    CreateRequest,
    ImageGenerationRequest,
    ImageToVideoRequest,
    LipSyncInput,
    LipSyncRequest,
    TextToVideoRequest,
    VirtualTryOnRequest,
)
from kling_async.testing import Durations, Fault, KlingEmulator

from .conftest import MakeClient, MakeEmulator, created, requests_to
from .watching import run_batch, run_clock

PNG = "https://img.example/person.png"


def requests_for(emu: KlingEmulator) -> dict[str, CreateRequest]:
    seed = emu.add_video(duration=5.0)
    return {
        "text2video": TextToVideoRequest(
            prompt="a cat on a skateboard",
            camera_control=CameraControl(type="simple", config=CameraConfig(zoom=4)),
            duration="5",
        ),
        "image2video": ImageToVideoRequest(image=PNG, prompt="waves"),
        "image-generation": ImageGenerationRequest(prompt="a red fox", n=3, aspect_ratio="4:3"),
        "lip-sync": LipSyncRequest(
            input=LipSyncInput(
                mode="text2video", video_id=seed.video_id, text="hello", voice_id="v1"
            )
        ),
        "virtual-try-on": VirtualTryOnRequest(human_image=PNG, cloth_image=PNG),
    }


async def finish(clock: FakeClock, kling: KlingClient, task: Task) -> Task:
    waiting = asyncio.ensure_future(kling.wait(task))
    await run_clock(clock, kling, waiting.done, step=2.0)
    return await waiting


@pytest.mark.parametrize("flavour", ["jwt", "relay"])
@pytest.mark.parametrize(
    "kind", ["text2video", "image2video", "image-generation", "lip-sync", "virtual-try-on"]
)
async def test_each_kind_is_created_watched_and_finished(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    clock: FakeClock,
    flavour: str,
    kind: str,
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    kling = make_client(emu, flavour)
    request = requests_for(emu)[kind]
    task = await kling.create(request)
    assert task.kind == kind and task.task_status is TaskStatus.SUBMITTED
    assert emu.tasks[task.task_id].kind == kind
    done = await finish(clock, kling, task)
    assert done.kind == kind
    if kind in ("image-generation", "virtual-try-on"):
        expected = 3 if kind == "image-generation" else 1
        assert len(done.task_result.images) == expected
        assert all(image.url for image in done.task_result.images)
    else:
        assert done.video is not None and done.video.url
    again = await kling.get_task(task.task_id, kind=kind)
    assert again == done or again.task_id == done.task_id
    listed = [t async for page in kling.list_tasks(kind) for t in page]
    assert task.task_id in {t.task_id for t in listed}  # (seeded videos are text2video tasks)
    assert {t.kind for t in listed} == {kind}


async def test_shortcuts_build_the_right_requests(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    seed = emu.add_video()
    tasks = [
        await kling.text_to_video("a boat", mode="pro", aspect_ratio="9:16"),
        await kling.image_to_video(PNG, image_tail=PNG),
        await kling.generate_images("a fox", n=2),
        await kling.lip_sync(
            LipSyncInput(mode="text2video", video_id=seed.video_id, text="hi", voice_id="v")
        ),
        await kling.virtual_try_on(PNG),
    ]
    bodies = [emu.tasks[t.task_id].body for t in tasks]
    assert bodies[0]["mode"] == "pro" and bodies[0]["aspect_ratio"] == "9:16"
    assert bodies[1]["image_tail"] == PNG
    assert bodies[2]["n"] == 2
    assert bodies[3]["input"]["video_id"] == seed.video_id
    assert bodies[4]["human_image"] == PNG
    # kinds that take an external_task_id get one on the official API; the others do not
    assert [("external_task_id" in b) for b in bodies] == [True, True, True, False, False]


async def test_lost_answers_per_kind(make_emulator: MakeEmulator, make_client: MakeClient) -> None:
    """By external_task_id where the kind takes one, by parent video for lip-sync on a relay,
    and honestly ambiguous where there is nothing to look by."""
    emu = await make_emulator()
    requests = requests_for(emu)
    official, relay = make_client(emu), make_client(emu, "relay")
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    t2v = await official.create(requests["text2video"])
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    lip = await relay.create(requests["lip-sync"])
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    with pytest.raises(AmbiguousSubmitError) as info:
        await official.create(requests["virtual-try-on"])
    assert info.value.kind == "virtual-try-on"
    assert created(emu) == 3
    assert {t2v.task_id, lip.task_id} <= set(emu.tasks)
    assert requests_to(emu, "create") == 3


async def test_server_side_rules_surface_as_invalid_request(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    with pytest.raises(InvalidRequestError) as info:  # a video the account does not have
        await kling.create(
            LipSyncRequest(
                input=LipSyncInput(mode="text2video", video_id="nope", text="hi", voice_id="v")
            )
        )
    assert info.value.code == 1201


async def test_a_mixed_batch_with_a_kind_column(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    seed = emu.add_video()
    kling = make_client(emu)
    rows: list[Any] = [
        {"kind": "text2video", "prompt": "one"},
        {"kind": "image-generation", "prompt": "two", "n": 2},
        {"video_id": seed.video_id},  # video-extend by default
        ImageToVideoRequest(image=PNG),
    ]
    outcomes = await run_batch(clock, kling, kling.extend_many(rows, slots=3), step=2.0)
    assert collections.Counter(o.outcome for o in outcomes) == {"succeed": 4}
    assert sorted(o.request.kind for o in outcomes) == [
        "image-generation",
        "image2video",
        "text2video",
        "video-extend",
    ]
    assert created(emu) == 4


async def test_mappings_are_built_strictly_with_their_nested_objects(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    seed = emu.add_video()
    kling = make_client(emu)
    rows: list[Any] = [
        {
            "kind": "text2video",
            "prompt": "pan",
            "camera_control": {"type": "simple", "config": {"pan": 3}},
        },
        {"video_id": seed.video_id, "watermark_info": True},  # attribute names work too
    ]
    outcomes = await run_batch(clock, kling, kling.extend_many(rows), step=2.0)
    assert sorted(o.outcome for o in outcomes) == ["succeed", "succeed"]
    by_kind = {o.request.kind: o.request for o in outcomes}
    t2v = by_kind["text2video"]
    assert isinstance(t2v, TextToVideoRequest)
    assert t2v.camera_control == CameraControl(type="simple", config=CameraConfig(pan=3))
    assert getattr(by_kind["video-extend"], "watermark_info", None) is not None
    assert created(emu) == 2


@pytest.mark.parametrize(
    ("row", "field", "says"),
    [
        ({"kind": "text2video", "prompt": "x", "camera": {}}, "camera", "unknown field"),
        (
            {
                "kind": "text2video",
                "prompt": "x",
                "camera_control": {"type": "simple", "config": {"zom": 1}},
            },
            "camera_control.config.zom",
            "unknown field",
        ),
        ({"kind": "text-to-video", "prompt": "x"}, "kind", "unknown kind"),
        ({"kind": "image-generation", "prompt": "x", "n": 10}, "n", ""),
    ],
)
async def test_a_bad_mapping_stops_the_batch_naming_the_field_before_any_create(
    make_emulator: MakeEmulator,
    make_client: MakeClient,
    row: dict[str, Any],
    field: str,
    says: str,
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    with pytest.raises(RequestValidationError) as caught:
        async for _ in kling.extend_many([row]):
            pass
    assert caught.value.field == field
    assert says in str(caught.value)
    assert requests_to(emu, "create") == 0


async def test_a_bad_row_mid_batch_stops_creates_but_loses_no_created_task(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    seed = emu.add_video()
    kling = make_client(emu)
    rows: list[Any] = [
        {"video_id": seed.video_id},
        {"video_id": seed.video_id, "prompt": "second"},
        {"video_id": seed.video_id, "promt": "typo"},
        {"video_id": seed.video_id, "prompt": "never sent"},
    ]
    outcomes: list[Outcome] = []
    with pytest.raises(RequestValidationError) as caught:
        await run_batch(clock, kling, kling.extend_many(rows, slots=5), into=outcomes, step=2.0)
    assert caught.value.field == "promt"
    # Both tasks created before the bad row were followed to the end and yielded first.
    assert [o.outcome for o in outcomes] == ["succeed", "succeed"]
    assert {o.task.task_id for o in outcomes} == set(emu.tasks) - {seed.task_id}
    assert created(emu) == 2


async def test_a_chain_can_start_from_text_to_video(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=30))
    kling = make_client(emu, "relay")
    t2v = await finish(clock, kling, await kling.text_to_video("a lighthouse", duration=5))
    chain_task = asyncio.ensure_future(kling.extend_until(t2v, 14))
    await run_clock(clock, kling, chain_task.done, step=2.0)
    chain = await chain_task
    assert chain.steps and chain.steps[0].parent_video_id == t2v.video.id  # type: ignore[union-attr]
    first = emu.tasks[chain.steps[0].task.task_id]
    assert first.body["task_id"] == t2v.task_id  # the relay is told the parent task
    assert chain.video is not None and (chain.video.duration or 0) >= 14
