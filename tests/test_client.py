"""KlingClient against the emulator: both flavours, both auth modes, reads, lifecycle, config."""

from __future__ import annotations

import aiohttp
import pytest

from kling_async import (
    ClientClosedError,
    ConfigurationError,
    KlingClient,
    NotFoundError,
    RequestValidationError,
    Task,
    TaskStatus,
    Video,
)
from kling_async.testing import KlingEmulator

from .conftest import MakeClient, created, requests_to


@pytest.mark.parametrize("flavour", ["jwt", "key", "relay"])
async def test_extend_then_get_in_each_flavour(
    emu: KlingEmulator, make_client: MakeClient, flavour: str
) -> None:
    seed = emu.add_video(duration=5.0)
    kling = make_client(emu, flavour)
    task = await kling.extend_video(
        seed.video_id, parent_task_id=seed.task_id, prompt="the camera pulls back", cfg_scale=0.4
    )
    assert task.kind == "video-extend"
    assert task.task_status is TaskStatus.SUBMITTED
    assert task.task_id in emu.tasks
    again = await kling.get_task(task)
    assert again.task_id == task.task_id
    assert again.task_info.parent_video is not None
    assert again.task_info.parent_video.id == seed.video_id
    assert created(emu) == 1


async def test_parent_task_id_goes_to_relays_only(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    seed = emu.add_video()
    official = await make_client(emu, "jwt").extend_video(
        seed.video_id, parent_task_id=seed.task_id
    )
    relay = await make_client(emu, "relay").extend_video(seed.video_id, parent_task_id=seed.task_id)
    assert "task_id" not in emu.tasks[official.task_id].body
    assert emu.tasks[relay.task_id].body["task_id"] == seed.task_id


async def test_official_creates_carry_a_generated_external_id(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    seed = emu.add_video()
    kling = make_client(emu)
    task = await kling.extend_video(seed.video_id)
    sent = emu.tasks[task.task_id].body["external_task_id"]
    assert sent.startswith("ka-")
    assert task.external_task_id == sent
    by_external = await kling.get_task(sent)
    assert by_external.task_id == task.task_id
    mine = await kling.extend_video(seed.video_id, external_task_id="order-17/a")
    assert (await kling.find_task("order-17/a")).task_id == mine.task_id  # type: ignore[union-attr]
    assert await kling.find_task("no-such-order") is None


async def test_extend_a_finished_task_chains_from_its_video(
    emu: KlingEmulator, make_client: MakeClient, clock: object
) -> None:
    seed = emu.add_video(duration=5.0)
    kling = make_client(emu, "relay")
    first = await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    await clock.advance(400)  # type: ignore[attr-defined]
    done = await kling.get_task(first)
    assert done.task_status is TaskStatus.SUCCEED
    assert done.video is not None and done.video.duration is not None
    assert 9.0 <= done.video.duration <= 10.0
    second = await kling.extend_video(done)  # video id and parent task id from the task
    assert emu.tasks[second.task_id].body["video_id"] == done.video.id
    assert emu.tasks[second.task_id].body["task_id"] == done.task_id
    from_video = await kling.extend_video(Video(id=done.video.id), parent_task_id=done.task_id)
    assert from_video.task_id != second.task_id


async def test_unfinished_task_cannot_be_extended(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    kling = make_client(emu)
    pending = Task(kind="video-extend", task_id="1", task_status=TaskStatus.PROCESSING)
    with pytest.raises(RequestValidationError, match="video_id"):
        await kling.extend_video(pending)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"video": ""}, "video_id"),
        ({"video": "v", "prompt": "x" * 2501}, "prompt"),
        ({"video": "v", "negative_prompt": "x" * 2501}, "negative_prompt"),
        ({"video": "v", "cfg_scale": 1.01}, "cfg_scale"),
        ({"video": "v", "cfg_scale": -0.1}, "cfg_scale"),
        ({"video": "v", "cfg_scale": float("nan")}, "cfg_scale"),
        ({"video": "v", "callback_url": "not a url"}, "callback_url"),
        ({"video": "v", "external_task_id": " padded "}, "external_task_id"),
        ({"video": "v", "parent_task_id": ""}, "parent_task_id"),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    emu: KlingEmulator, make_client: MakeClient, kwargs: dict[str, object], field: str
) -> None:
    kling = make_client(emu)
    video = kwargs.pop("video")
    with pytest.raises(RequestValidationError) as info:
        await kling.extend_video(video, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert sum(emu.stats.requests.values()) == 0


async def test_prompt_of_exactly_2500_characters_is_accepted(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    seed = emu.add_video()
    task = await make_client(emu).extend_video(seed.video_id, prompt="x" * 2500, cfg_scale=1)
    assert emu.tasks[task.task_id].body["prompt"] == "x" * 2500


async def test_get_unknown_task_is_not_found(emu: KlingEmulator, make_client: MakeClient) -> None:
    kling = make_client(emu)
    with pytest.raises(NotFoundError) as info:
        await kling.get_task("123456789012345678")
    assert info.value.http_status is not None
    assert info.value.request_id
    with pytest.raises(RequestValidationError):
        await kling.get_task("")


async def test_list_tasks_pages_until_the_end(
    emu: KlingEmulator, make_client: MakeClient, clock: object
) -> None:
    seed = emu.add_video()
    kling = make_client(emu)
    ids = []
    for _ in range(7):
        ids.append((await kling.extend_video(seed.video_id)).task_id)
        await clock.advance(1)  # type: ignore[attr-defined]
    pages = [page async for page in kling.list_tasks(page_size=3)]
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [t.task_id for page in pages for t in page]
    assert listed == list(reversed(ids))  # newest first
    assert all(t.kind == "video-extend" for page in pages for t in page)
    assert requests_to(emu, "list") == 3
    with pytest.raises(RequestValidationError, match="page_size"):
        async for _ in kling.list_tasks(page_size=501):
            pass


async def test_list_stops_on_a_full_last_page(emu: KlingEmulator, make_client: MakeClient) -> None:
    seed = emu.add_video()
    kling = make_client(emu)
    for _ in range(4):
        await kling.extend_video(seed.video_id)
    pages = [page async for page in kling.list_tasks(page_size=2)]
    assert [len(p) for p in pages] == [2, 2]
    assert requests_to(emu, "list") == 3  # the third, empty page says it is the end


async def test_closed_client_refuses_work(emu: KlingEmulator, make_client: MakeClient) -> None:
    kling = make_client(emu)
    await kling.aclose()
    await kling.aclose()  # idempotent
    with pytest.raises(ClientClosedError):
        await kling.get_task("1")
    with pytest.raises(ClientClosedError):
        kling.watch(["1"])


async def test_injected_session_is_left_open(emu: KlingEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with KlingClient(**emu.client_kwargs("key"), session=session) as kling:
            with pytest.raises(NotFoundError):
                await kling.get_task("1")
        assert not session.closed
        async with session.get(emu.url + "/v1/videos/video-extend") as response:
            assert response.status == 401  # the session still works; no credentials sent


async def test_own_session_is_closed(emu: KlingEmulator) -> None:
    kling = KlingClient(**emu.client_kwargs("key"))
    with pytest.raises(NotFoundError):
        await kling.get_task("1")
    session = kling._transport._session
    assert session is not None and not session.closed
    await kling.aclose()
    assert session.closed


def test_credentials_come_from_arguments_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KLING_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY", "KLING_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="KLING_API_KEY"):
        KlingClient()
    with pytest.raises(ConfigurationError, match="not both"):
        KlingClient(api_key="k", access_key="a", secret_key="s")
    with pytest.raises(ConfigurationError, match="access_key"):
        KlingClient(access_key="a")
    monkeypatch.setenv("KLING_ACCESS_KEY", "env-ak")
    monkeypatch.setenv("KLING_SECRET_KEY", "env-sk")
    monkeypatch.setenv("KLING_BASE_URL", "https://relay.example/kling/")
    from_env = KlingClient()
    assert from_env.base_url == "https://relay.example/kling"
    assert from_env.flavour == "relay"
    explicit = KlingClient(api_key="arg-key", base_url="https://api-beijing.klingai.com")
    assert explicit.flavour == "official"
    assert repr(explicit._transport.credentials) == "StaticKey(***)"
    monkeypatch.delenv("KLING_BASE_URL")
    assert KlingClient(api_key="k").base_url == "https://api-singapore.klingai.com"
    with pytest.raises(ConfigurationError, match="base_url"):
        KlingClient(api_key="k", base_url="api.klingai.com")
