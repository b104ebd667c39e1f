"""Account limits: task slots (1303), balance (1102), rate (1302); refused creates are free."""

from __future__ import annotations

from typing import Any

import pytest

from kling_async.clock import FakeClock
from kling_async.testing import Durations


async def create(api: Any, video_id: str) -> tuple[int, Any, Any]:
    """Post one extend with the raw response's headers."""
    url = api.emu.url + "/v1/videos/video-extend"
    async with api.http.post(url, json={"video_id": video_id}, headers=api.headers()) as r:
        return r.status, await r.json(), r.headers


@pytest.mark.parametrize("emulator_options", [{"slot_limit": 2, "durations": Durations(5, 10)}])
async def test_slots_are_held_until_terminal_then_freed_lazily(api: Any, clock: FakeClock) -> None:
    video_id = api.emu.add_video().video_id
    for _ in range(2):
        assert (await create(api, video_id))[0] == 200
    assert api.emu.slots_in_use == 2

    status, answer, headers = await create(api, video_id)
    api.assert_error(status, answer, 429, 1303)
    assert answer["message"] == "parallel task over resource pack limit"
    assert "Retry-After" not in headers
    assert api.emu.stats.created == 2

    await clock.advance(14.9)  # both still processing
    assert (await create(api, video_id))[0] == 429
    await clock.advance(0.1)  # both terminal: slots free without anyone polling
    assert api.emu.slots_in_use == 0
    assert (await create(api, video_id))[0] == 200
    assert api.emu.stats.max_slots_in_use == 2
    assert api.emu.stats.requests[("POST", "create", 429)] == 2


@pytest.mark.parametrize(
    "emulator_options",
    [{"slot_limit": 1, "failure_rate": 1.0, "durations": Durations(0, 3)}],
)
async def test_failed_tasks_release_their_slot(api: Any, clock: FakeClock) -> None:
    video_id = api.emu.add_video().video_id
    assert (await create(api, video_id))[0] == 200
    assert (await create(api, video_id))[0] == 429
    await clock.advance(3)
    assert (await create(api, video_id))[0] == 200


@pytest.mark.parametrize("emulator_options", [{"balance_units": 2.5, "unit_cost": 1.0}])
async def test_balance_runs_out_with_1102(api: Any) -> None:
    video_id = api.emu.add_video().video_id
    for _ in range(2):
        assert (await create(api, video_id))[0] == 200
    assert api.emu.balance == 0.5
    status, answer, _ = await create(api, video_id)
    api.assert_error(status, answer, 429, 1102)
    assert answer["message"] == "Account balance not enough"
    assert api.emu.balance == 0.5
    assert api.emu.stats.created == 2
    assert api.emu.task_json(next(iter(api.emu.tasks)))  # the seed is still there


@pytest.mark.parametrize("emulator_options", [{"balance_units": 0.0, "slot_limit": 0}])
async def test_balance_is_checked_before_slots(api: Any) -> None:
    status, answer, _ = await create(api, api.emu.add_video().video_id)
    api.assert_error(status, answer, 429, 1102)


@pytest.mark.parametrize("emulator_options", [{"rate_limit": 2, "retry_after": 1.5}])
async def test_rate_limit_per_clock_second_with_retry_after(api: Any, clock: FakeClock) -> None:
    video_id = api.emu.add_video().video_id
    for _ in range(2):
        assert (await create(api, video_id))[0] == 200
    status, answer, headers = await create(api, video_id)
    api.assert_error(status, answer, 429, 1302)
    assert headers["Retry-After"] == "1.5"
    await clock.advance(1.0)
    assert (await create(api, video_id))[0] == 200
    assert api.emu.stats.created == 3


@pytest.mark.parametrize("emulator_options", [{"slot_limit": 1, "retry_after": 2}])
async def test_retry_after_on_1303(api: Any) -> None:
    video_id = api.emu.add_video().video_id
    await create(api, video_id)
    status, _, headers = await create(api, video_id)
    assert (status, headers["Retry-After"]) == (429, "2")


@pytest.mark.parametrize("emulator_options", [{"slot_limit": 1, "balance_units": 5}])
async def test_invalid_bodies_are_refused_before_limits(api: Any) -> None:
    video_id = api.emu.add_video().video_id
    await create(api, video_id)
    status, answer = await api.create({"video_id": video_id, "cfg_scale": 3})
    api.assert_error(status, answer, 400, 1201)
    assert api.emu.balance == 4


def test_knobs_are_checked() -> None:
    from kling_async.testing import KlingEmulator

    for name, bad in (
        ("slot_limit", -1),
        ("rate_limit", 0),
        ("unit_cost", -1),
        ("failure_rate", 2),
    ):
        options: dict[str, Any] = {name: bad}
        with pytest.raises(ValueError, match=name):
            KlingEmulator(**options)
