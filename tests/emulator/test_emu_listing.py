"""List queries (kling-api.md 4.2, 5.3): paging, ranges, newest first, external ids."""

from __future__ import annotations

from typing import Any

import pytest

from kling_async.clock import FakeClock


async def make_tasks(api: Any, clock: FakeClock, count: int) -> list[str]:
    """``count`` extends one second apart, oldest first, with external ids ``job-<n>``."""
    video_id = api.emu.add_video().video_id
    ids = []
    for n in range(count):
        data = await api.created({"video_id": video_id, "external_task_id": f"job-{n}"})
        ids.append(data["task_id"])
        await clock.advance(1)
    return ids


async def listed(api: Any, query: str = "", flavour: str = "official") -> list[str]:
    status, answer = await api.list(query, flavour=flavour)
    assert (status, answer["code"]) == (200, 0), answer
    assert isinstance(answer["data"], list)
    return [task["task_id"] for task in answer["data"]]


async def test_list_is_newest_first_and_pages(api: Any, clock: FakeClock) -> None:
    ids = await make_tasks(api, clock, 5)
    newest_first = ids[::-1]
    assert await listed(api) == newest_first
    assert await listed(api, "?pageNum=1&pageSize=2") == newest_first[0:2]
    assert await listed(api, "?pageNum=2&pageSize=2") == newest_first[2:4]
    assert await listed(api, "?pageNum=3&pageSize=2") == newest_first[4:]
    assert await listed(api, "?pageNum=4&pageSize=2") == []
    assert await listed(api, "?pageSize=3", flavour="relay") == newest_first[:3]


async def test_list_items_are_full_task_objects(api: Any, clock: FakeClock) -> None:
    (task_id,) = await make_tasks(api, clock, 1)
    _, answer = await api.list()
    (item,) = answer["data"]
    assert item == api.emu.task_json(task_id)
    assert item["task_status"] == "submitted"
    assert item["task_info"]["external_task_id"] == "job-0"


async def test_default_page_size_is_30(api: Any, clock: FakeClock) -> None:
    video_id = api.emu.add_video().video_id
    for _ in range(31):
        await api.created({"video_id": video_id})
    assert len(await listed(api)) == 30
    assert len(await listed(api, "?pageNum=2")) == 1


async def test_list_shows_only_its_kind(api: Any) -> None:
    api.emu.add_video()
    assert await listed(api) == []
    status, answer = await api.call("GET", "/v1/videos/text2video")
    assert (status, len(answer["data"])) == (200, 1)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?pageNum=0", "pageNum"),
        ("?pageNum=1001", "pageNum"),
        ("?pageNum=x", "pageNum"),
        ("?pageNum=-1", "pageNum"),
        ("?pageSize=0", "pageSize"),
        ("?pageSize=501", "pageSize"),
        ("?pageSize=2.5", "pageSize"),
    ],
)
async def test_page_parameters_out_of_range_are_1201(api: Any, query: str, field: str) -> None:
    status, answer = await api.list(query)
    api.assert_error(status, answer, 400, 1201)
    assert field in answer["message"]


async def test_page_parameter_bounds_are_inclusive(api: Any) -> None:
    assert await listed(api, "?pageNum=1000&pageSize=500") == []
    assert await listed(api, "?pageNum=1&pageSize=1") == []


async def test_external_task_id_query_on_the_collection(api: Any, clock: FakeClock) -> None:
    ids = await make_tasks(api, clock, 3)
    assert await listed(api, "?external_task_id=job-1") == [ids[1]]
    assert await listed(api, "?external_task_id=job-9") == []
    assert await listed(api, "?external_task_id=job-2", flavour="relay") == [ids[2]]
