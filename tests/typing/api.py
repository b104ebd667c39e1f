"""The public surface as users write it, checked by ``mypy --strict`` (never run).

In the manner of stamina's typing tests: if a signature or a return type changes in a way that
breaks code like this, ``mypy`` (which checks ``tests/typing``) fails. ``assert_type`` pins what
each call returns.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from typing_extensions import assert_type

from kling_async import (
    KINDS,
    AccessKeyPair,
    AdvancedLipSyncRequest,
    AmbiguousSubmitError,
    APIError,
    AvatarRequest,
    BatchReport,
    Cadence,
    CameraConfig,
    CameraControl,
    Chain,
    Clock,
    Coordinator,
    CreateRequest,
    DatabaseError,
    DynamicMask,
    EffectInput,
    EffectsRequest,
    Element,
    Face,
    FaceChoice,
    FaceIdentification,
    FakeClock,
    ImageExpandRequest,
    ImageGenerationRequest,
    ImageToVideoRequest,
    Journal,
    Kind,
    KlingClient,
    LipSyncInput,
    LipSyncRequest,
    LocalCoordinator,
    MotionControlRequest,
    MultiImage,
    MultiImageToImageRequest,
    MultiImageToVideoRequest,
    OmniImage,
    OmniShot,
    OmniVideo,
    OmniVideoRequest,
    Outcome,
    PreflightBalanceError,
    Progress,
    RequestValidationError,
    ResourcePack,
    ResourcePacks,
    RetryEvent,
    RetryPolicy,
    ScaledClock,
    SharedJournal,
    StaticKey,
    StatusChange,
    SubjectImage,
    SystemClock,
    Task,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
    TextToVideoRequest,
    Timeouts,
    Trajectory,
    UnitCosts,
    Video,
    VideoExtendRequest,
    VirtualTryOnRequest,
)
from kling_async.clock import io_in_flight
from kling_async.download import DownloadResult
from kling_async.journal import JournalEntry
from kling_async.polling.durations import DurationModel, DurationSketch
from kling_async.polling.watch import TaskWatch
from kling_async.postgres import Database, redact_dsn
from kling_async.postgres.coordinator import PostgresCoordinator
from kling_async.testing import Durations, Fault, KlingEmulator
from kling_async.webhooks import CallbackEvent, CallbackReceiver, aiohttp_handler, asgi_app


def on_retry(event: RetryEvent) -> None:
    assert_type(event.attempt, int)
    assert_type(event.wait, float)


def credentials_and_kinds() -> None:
    StaticKey("key")
    AccessKeyPair("ak", "sk")
    assert_type(KINDS["video-extend"], Kind)
    assert_type(Cadence().lag, float)
    assert_type(DurationModel().sketch("video-extend", 320.0).quantile(0.5), float | None)
    assert_type(Cadence().window(DurationSketch(320.0)), tuple[float, float] | None)


async def journals(path: Path) -> None:
    journal = await Journal.open(path)
    try:
        assert_type(await journal.entries(), list[JournalEntry])
    finally:
        await journal.close()
    assert_type(Journal.read(path), list[JournalEntry])


async def shared_journals(kling: KlingClient) -> None:
    async with await SharedJournal.open("postgresql://", batch="nightly", lease=10.0) as journal:
        assert_type(await journal.claim("k", {"kind": "video-extend"}), JournalEntry | None)
        assert_type(await journal.claim_orphans(5), list[JournalEntry])
        assert_type(await journal.held_elsewhere(), int)
        kling.extend_many([], journal=journal)
    kling.extend_many([], journal="postgresql://", batch="nightly")
    assert_type(await SharedJournal.read("postgresql://", "nightly"), list[JournalEntry])
    async with await Database.open("postgresql://") as db:
        assert_type(db.where, str)
    assert_type(redact_dsn("postgresql://u:p@h/d"), str)
    error: Exception = DatabaseError("down")
    assert error


def clients() -> list[KlingClient]:
    return [
        KlingClient(),
        KlingClient(access_key="ak", secret_key="sk", base_url="http://127.0.0.1:1"),
        KlingClient(
            api_key="key",
            base_url="http://127.0.0.1:1/kling",
            flavour="relay",
            timeouts=Timeouts(connect=5, read=30, total=60),
            retry=RetryPolicy(max_attempts=3, on_retry=on_retry),
            clock=FakeClock(autojump=0.005),
            max_polls_per_second=100.0,
        ),
        KlingClient(retry=RetryPolicy.no_wait(), clock=ScaledClock(60)),
        KlingClient(api_key="key", coordinator="postgresql://kling@db/kling"),
        KlingClient(api_key="key", coordinator=PostgresCoordinator("", lease=10.0)),
        KlingClient(api_key="key", coordinator=LocalCoordinator()),
    ]


def coordinators(kling: KlingClient) -> Coordinator:
    assert_type(kling.coordinator.shared, bool)
    return kling.coordinator


async def creates(kling: KlingClient, video: Video) -> list[Task]:
    tasks = [
        await kling.extend_video("video-id", prompt="p", cfg_scale=0.5, watermark=True),
        await kling.extend_video(video),
        await kling.text_to_video(
            "a boat", camera_control={"type": "simple", "config": {"zoom": 4}}
        ),
        await kling.text_to_video(
            "a boat", camera_control=CameraControl(type="simple", config=CameraConfig(zoom=4))
        ),
        await kling.image_to_video(
            "https://img.example/a.png",
            dynamic_masks=[{"mask": "m", "trajectories": [{"x": 1, "y": 2}]}],
        ),
        await kling.image_to_video(
            "https://img.example/a.png",
            dynamic_masks=[
                DynamicMask(mask="m", trajectories=(Trajectory(1, 2), Trajectory(3, 4)))
            ],
        ),
        await kling.generate_images("a fox", n=2),
        await kling.lip_sync(
            {"mode": "text2video", "video_id": "v", "text": "hi", "voice_id": "x"}
        ),
        await kling.lip_sync(
            LipSyncInput(mode="text2video", video_id="v", text="hi", voice_id="x")
        ),
        await kling.virtual_try_on(
            "https://img.example/a.png", cloth_image="https://img.example/c.png"
        ),
    ]
    requests: list[CreateRequest] = [
        VideoExtendRequest(video_id="v"),
        TextToVideoRequest(prompt="p"),
        ImageToVideoRequest(image="https://img.example/a.png"),
        ImageGenerationRequest(prompt="p"),
        LipSyncRequest(input=LipSyncInput(mode="text2video", video_id="v", text="t", voice_id="x")),
        VirtualTryOnRequest(human_image="https://img.example/a.png"),
        MultiImageToVideoRequest(image_list=["https://img.example/a.png"], prompt="p"),
        MultiImageToVideoRequest(
            image_list=[MultiImage(image="https://img.example/a.png")], prompt="p"
        ),
        OmniVideoRequest(prompt="p", aspect_ratio="16:9", image_list=[OmniImage(image_url="u")]),
        OmniVideoRequest(
            multi_shot=True,
            shot_type="customize",
            aspect_ratio="1:1",
            multi_prompt=[OmniShot(index=1, prompt="a", duration="5")],
        ),
        OmniVideoRequest.extension_of("https://v.example/a.mp4", aspect_ratio="16:9"),
        OmniVideoRequest(prompt="p", video_list=[OmniVideo(video_url="https://v.example/a.mp4")]),
        EffectsRequest(effect_scene="squish", input=EffectInput(image="https://img.example/a.png")),
        ImageExpandRequest(image="https://img.example/a.png", up_expansion_ratio=0.5),
        MultiImageToImageRequest(subject_image_list=[SubjectImage(subject_image="s")], n=2),
        AdvancedLipSyncRequest(
            session_id="s",
            face_choose=[
                FaceChoice(
                    face_id="0",
                    audio_id="a",
                    sound_start_time=0,
                    sound_end_time=2000,
                    sound_insert_time=0,
                )
            ],
        ),
        AvatarRequest(image="https://img.example/a.png", audio_id="a"),
        MotionControlRequest(
            image_url="u",
            video_url="https://v.example/a.mp4",
            character_orientation="video",
            mode="std",
            element_list=[Element(element_id=1)],
        ),
    ]
    for request in requests:
        prepared = kling.prepare(request)
        tasks.append(await kling.create(prepared, timeouts=Timeouts(read=10)))
    return tasks


async def later_kinds(kling: KlingClient, task: Task) -> list[Task]:
    faces = await kling.identify_face(task)
    assert_type(faces, FaceIdentification)
    assert_type(faces.faces, tuple[Face, ...])
    assert_type(await kling.identify_face(video_url="https://v.example/a.mp4"), FaceIdentification)
    face = {"face_id": faces.faces[0].face_id, "audio_id": "a"}
    return [
        await kling.multi_image_to_video(["https://img.example/a.png"], "two"),
        await kling.omni_video("a storm", aspect_ratio="1:1"),
        await kling.extend_with_omni(task, aspect_ratio="16:9"),
        await kling.video_effects("squish", {"image": "https://img.example/a.png"}),
        await kling.expand_image("https://img.example/a.png", left_expansion_ratio=1.0),
        await kling.multi_image_to_image(["https://img.example/a.png"], n=2),
        await kling.advanced_lip_sync(faces, [face]),
        await kling.avatar("https://img.example/a.png", audio_id="a"),
        await kling.motion_control(
            "u", "https://v.example/a.mp4", character_orientation="image", mode="pro"
        ),
    ]


async def reads(kling: KlingClient, task: Task) -> None:
    assert_type(await kling.get_task(task), Task)
    assert_type(await kling.get_task("id", kind="text2video"), Task)
    assert_type(await kling.find_task("external"), Task | None)
    async for page in kling.list_tasks("video-extend", page_size=100):
        assert_type(page, list[Task])
    assert_type(task.task_status, TaskStatus)
    assert_type(task.video, Video | None)
    assert_type(task.is_terminal, bool)
    packs = await kling.resource_packs(start_time=0, end_time=1, resource_pack_name="p")
    assert_type(packs, ResourcePacks)
    assert_type(packs.packs, tuple[ResourcePack, ...])
    assert_type(packs.remaining("video", now_ms=0), float)
    assert_type(packs.packs[0].product, Literal["video", "image", "try-on"] | None)


async def following(kling: KlingClient, task: Task) -> None:
    assert_type(await kling.wait(task, timeout=900), Task)
    assert_type(await kling.wait("id", kind="lip-sync"), Task)
    watch = kling.watch([task, "id"], kind="video-extend", timeout=60.0)
    assert_type(watch, TaskWatch)
    async with watch as changes:
        async for change in changes:
            assert_type(change, StatusChange)
            assert_type(change.current, TaskStatus)
            assert_type(change.previous, TaskStatus | None)
            assert_type(change.error, Exception | None)
    assert_type(watch.unfinished, list[Task | str])
    try:
        await kling.wait(task)
    except TaskFailedError as failed:
        assert_type(failed.task, Task)
    except TaskTimeoutError as late:
        assert_type(late.task_id, str)
    except AmbiguousSubmitError as unsure:
        assert_type(await kling.find_submitted(unsure), Task | None)
    except APIError as refused:
        assert_type(refused.code, int | None)
    except RequestValidationError as bad:
        assert_type(bad.field, str)


async def bulk(kling: KlingClient, tasks: list[Task], dest: Path) -> None:
    batch = kling.extend_many(
        [
            VideoExtendRequest(video_id="v"),
            {"video_id": "v"},
            {"kind": "text2video", "prompt": "p"},
        ],
        journal="batch.sqlite",
        slots=10,
        timeout=1800,
    )
    checked = kling.extend_many([{"video_id": "v"}], preflight=True)
    priced = kling.extend_many([{"video_id": "v"}], preflight=UnitCosts(units={"video-extend": 2}))
    try:
        async for outcome in checked:
            assert_type(outcome, Outcome)
    except PreflightBalanceError as refused:
        assert_type(refused.needed, dict[str | None, float])
    assert_type(priced.progress, Progress)
    async for outcome in batch:
        assert_type(outcome, Outcome)
        assert_type(outcome.ok, bool)
        assert_type(outcome.task, Task | None)
    assert_type(batch.progress, Progress)
    assert_type(batch.running, dict[str, str])
    report = batch.report()
    assert_type(report, BatchReport)
    assert_type(report.to_json(), str)
    assert_type(report.to_json(indent=2), str)
    assert_type(report.to_dict(), dict[str, Any])
    chain = await kling.extend_until("video-id", 60, duration=5)
    assert_type(chain, Chain)
    assert_type(chain.video, Video | None)
    downloads = await kling.download(tasks, dest, concurrency=2)
    assert_type(downloads, list[DownloadResult])


async def clocks() -> None:
    fake = FakeClock(autojump=0.005)
    manual = FakeClock(start_time=0.0)
    assert_type(FakeClock(autojump=True).autojump, float | None)
    await manual.advance(10)
    async with io_in_flight(fake), io_in_flight(SystemClock()):
        pass  # real I/O the clock cannot see: no autojump meanwhile
    for clock in (fake, manual, ScaledClock(60), SystemClock()):
        assert isinstance(clock, Clock)
        assert_type(clock.monotonic(), float)
        await clock.sleep(0)


async def emulator() -> None:
    clock = FakeClock(autojump=0.005)
    durations = Durations(queued=5, running=315)
    async with KlingEmulator(clock=clock, slot_limit=5, durations=durations) as emu:
        seed = emu.add_video(duration=5.0)
        emu.fault(Fault.SLOW, route="get", delay=0.1)
        async with KlingClient(**emu.client_kwargs("jwt"), clock=clock) as kling:
            task = await kling.extend_video(seed.video_id)
            assert_type(emu.stats.created, int)
            await kling.wait(task)


def callbacks(kling: KlingClient) -> None:
    async def on_event(event: CallbackEvent) -> None:
        assert_type(event.task, Task)

    receiver = CallbackReceiver(secret="whsec_x", client=kling, on_event=on_event)
    receiver.client = None
    aiohttp_handler(receiver)
    asgi_app(receiver)


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(clocks())
