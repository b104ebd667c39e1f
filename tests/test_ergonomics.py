"""What people naturally pass: request classes from the package root, mappings for nested
objects in every shortcut (built as ``extend_many`` builds them), a report as JSON text, and
the kind taken from a ``Task`` wherever one is accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest

import kling_async
from kling_async import (
    DynamicMask,
    FakeClock,
    KlingClient,
    RequestValidationError,
    Task,
    TaskStatus,
    Trajectory,
    requests,
)
from kling_async.testing import Durations, KlingEmulator

from .conftest import MakeClient, MakeEmulator, created

PNG = "https://img.example/person.png"
MASK = {"mask": PNG, "trajectories": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}


@pytest.fixture
def clock() -> FakeClock:
    """Batches and waits here end by themselves: time jumps whenever the loop is idle."""
    return FakeClock(autojump=0.005)


def test_every_request_type_is_exported_from_the_package() -> None:
    for name in requests.__all__:
        assert getattr(kling_async, name) is getattr(requests, name), name
        assert name in kling_async.__all__, name


async def test_shortcuts_take_mappings_for_nested_objects(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    seed = emu.add_video()
    t2v = await kling.text_to_video("x", camera_control={"type": "simple", "config": {"zoom": 4}})
    i2v = await kling.image_to_video(
        PNG, dynamic_masks=[MASK, DynamicMask(mask=PNG, trajectories=[Trajectory(5, 6)] * 2)]
    )
    lip = await kling.lip_sync(
        {"mode": "text2video", "video_id": seed.video_id, "text": "hi", "voice_id": "v"}
    )
    camera = emu.tasks[t2v.task_id].body["camera_control"]
    assert camera["type"] == "simple" and camera["config"]["zoom"] == 4
    masks = emu.tasks[i2v.task_id].body["dynamic_masks"]
    assert [m["trajectories"][0] for m in masks] == [{"x": 1, "y": 2}, {"x": 5, "y": 6}]
    assert emu.tasks[lip.task_id].body["input"]["video_id"] == seed.video_id


async def test_a_shortcut_builds_the_request_extend_many_builds(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    fields: dict[str, Any] = {"prompt": "x", "camera_control": {"type": "down_back"}}
    direct = await kling.text_to_video(**fields, external_task_id="a")
    batch = kling.extend_many([{"kind": "text2video", **fields, "external_task_id": "b"}])
    async for _ in batch:
        pass
    (batched,) = (t for t in emu.tasks.values() if t.body.get("external_task_id") == "b")
    body = emu.tasks[direct.task_id].body
    assert {**body, "external_task_id": "b"} == batched.body


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda k: k.text_to_video("x", camera_control={"type": "simple", "config": {"zom": 4}}),
            "camera_control.config.zom",
        ),
        (lambda k: k.text_to_video("x", camera_control="simple"), "camera_control"),
        (lambda k: k.text_to_video("x", colour="red"), "colour"),
        (
            lambda k: k.image_to_video(PNG, dynamic_masks=[{"mask": PNG, "trajectories": []}]),
            "dynamic_masks.trajectories",
        ),
        (
            lambda k: k.image_to_video(PNG, dynamic_masks=[{"mask": PNG, "path": []}]),
            "dynamic_masks[0].path",
        ),
        (lambda k: k.lip_sync({"mode": "text2video", "text": "hi"}), "input.video_id"),
        (lambda k: k.generate_images("a fox", n="2"), "n"),
    ],
)
async def test_bad_nested_input_is_refused_before_any_io(
    make_emulator: MakeEmulator, make_client: MakeClient, call: Any, field: str
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    with pytest.raises(RequestValidationError) as caught:
        await call(kling)
    assert caught.value.field == field
    assert created(emu) == 0 and not emu.stats.requests


async def test_the_report_is_json_text_and_a_dict(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    batch = kling.extend_many([{"video_id": "no-such-video"}])
    outcomes = [o async for o in batch]
    assert [o.outcome for o in outcomes] == ["rejected"]
    report = batch.report()
    text = report.to_json()
    assert isinstance(text, str)
    assert json.loads(text) == report.to_dict()
    assert report.to_dict()["counts"] == {"rejected": 1}
    assert report.to_dict()["failures"][0]["code"] == 1201
    assert json.loads(report.to_json(indent=2)) == report.to_dict()


async def test_a_task_brings_its_kind_to_every_entry_point(tmp_path: Any) -> None:
    clock = FakeClock(autojump=0.005)
    async with KlingEmulator(clock=clock, durations=Durations(queued=2, running=30)) as emu:
        seed = emu.add_video()
        async with KlingClient(**emu.client_kwargs("jwt"), clock=clock) as kling:
            t2v = await kling.text_to_video("a boat")
            images = await kling.generate_images("a fox")
            extend = await kling.extend_video(seed.video_id)
            assert (await kling.get_task(t2v)).kind == "text2video"
            # a Task keeps its kind next to bare ids of ``kind`` (the default video-extend)
            seen: dict[str, str] = {}
            async for change in kling.watch([t2v, images, extend.task_id], timeout=600):
                assert change.error is None
                seen[change.task_id] = change.task.kind
            assert seen == {
                t2v.task_id: "text2video",
                images.task_id: "image-generation",
                extend.task_id: "video-extend",
            }
            done = await kling.wait(t2v, timeout=600)
            assert done.kind == "text2video" and done.task_status is TaskStatus.SUCCEED
            # a bare id needs its kind: as video-extend it is not found
            assert (await kling.wait(t2v.task_id, kind="text2video")).task_id == t2v.task_id
            (result,) = await kling.download([done], tmp_path)
            assert result.path is not None and result.path.stat().st_size > 0


def test_watch_of_a_task_needs_no_kind_even_for_a_watch_of_another_kind() -> None:
    task = Task(kind="lip-sync", task_id="t1", task_status=TaskStatus.SUCCEED)
    kling = KlingClient(api_key="k", base_url="http://127.0.0.1:9")
    watch = kling.watch([task], kind="text2video")
    watch.add(task)
    assert watch.unfinished == []  # already final: nothing to poll, whatever ``kind`` says
