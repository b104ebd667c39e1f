"""Every code of the error table (kling-api.md 7) can be produced, with its HTTP status: by an
account rule (1100, 1101, 1103, 1301, 1304: the emulator's policy knobs) or by a planned
refusal (``emu.refuse``) for codes with no documented trigger; and the client maps each."""

from __future__ import annotations

from typing import Any

import pytest

from kling_async import (
    AccountError,
    AuthenticationError,
    PermissionDeniedError,
    PolicyError,
    ServerError,
)
from kling_async.testing import KlingEmulator
from kling_async.testing._replies import DOCUMENTED

T2V = "/v1/videos/text2video"
LIP_SYNC = "/v1/videos/lip-sync"
TABLE = {  # kling-api.md 7, copied independently of the emulator's table
    1000: 401, 1001: 401, 1002: 401, 1003: 401, 1004: 401,
    1100: 429, 1101: 429, 1102: 429, 1103: 403,
    1200: 400, 1201: 400, 1202: 404, 1203: 404,
    1300: 400, 1301: 400, 1302: 429, 1303: 429, 1304: 429,
    5000: 500, 5001: 503, 5002: 504,
}  # fmt: skip


def test_the_emulator_knows_the_whole_table() -> None:
    assert {code: http for code, (http, _) in DOCUMENTED.items()} == TABLE


@pytest.mark.parametrize(("code", "http_status"), sorted(TABLE.items()))
async def test_any_documented_code_can_be_planned(api: Any, code: int, http_status: int) -> None:
    api.emu.refuse(code)
    status, answer = await api.call("POST", T2V, json={"prompt": "a cat"})
    api.assert_error(status, answer, http_status, code)
    assert api.emu.stats.created == 0
    # used up: the next create is handled
    status, answer = await api.call("POST", T2V, json={"prompt": "a cat"})
    assert (status, answer["code"]) == (200, 0)


async def test_a_planned_refusal_on_reads_keeps_its_route_and_message(api: Any) -> None:
    api.emu.refuse(1000, route="get", times=2, message="who are you")
    task_id = (await api.created({"video_id": api.emu.add_video().video_id}))["task_id"]
    for _ in range(2):
        status, answer = await api.get(task_id)
        api.assert_error(status, answer, 401, 1000)
        assert answer["message"] == "who are you"
    assert (await api.get(task_id))[0] == 200


def test_an_undocumented_code_cannot_be_planned() -> None:
    with pytest.raises(ValueError, match="not a documented error code"):
        KlingEmulator().refuse(1999)


@pytest.mark.parametrize(
    ("emulator_options", "code"),
    [({"account_state": "arrears"}, 1101), ({"account_state": "abnormal"}, 1100)],
)
async def test_account_states_refuse_creates_but_not_reads(api: Any, code: int) -> None:
    seed = api.emu.add_video()
    status, answer = await api.create({"video_id": seed.video_id})
    api.assert_error(status, answer, 429, code)
    assert (await api.get(seed.task_id))[0] == 404  # a text2video task: not an extend
    status, answer = await api.call("GET", f"{T2V}/{seed.task_id}")
    assert (status, answer["code"]) == (200, 0)  # what was paid for can still be fetched


@pytest.mark.parametrize("emulator_options", [{"forbidden": ["lip-sync", "kling-v1-6"]}])
async def test_forbidden_kinds_and_models_are_1103_403(api: Any) -> None:
    status, answer = await api.call("POST", T2V, json={"prompt": "x", "model_name": "kling-v1-6"})
    api.assert_error(status, answer, 403, 1103)
    assert "kling-v1-6" in answer["message"]
    lip = {"mode": "text2video", "text": "hi", "voice_id": "v", "video_id": "nope"}
    status, answer = await api.call("POST", LIP_SYNC, json={"input": lip})
    api.assert_error(status, answer, 400, 1201)  # the body is checked first
    lip["video_id"] = api.emu.add_video().video_id
    status, answer = await api.call("POST", LIP_SYNC, json={"input": lip})
    api.assert_error(status, answer, 403, 1103)
    status, answer = await api.call("POST", T2V, json={"prompt": "x"})
    assert (status, answer["code"]) == (200, 0)


@pytest.mark.parametrize("emulator_options", [{"blocked_prompts": [r"(?i)\bforbidden\b"]}])
async def test_content_policy_is_1301_for_any_text_field(api: Any) -> None:
    for body in ({"prompt": "a FORBIDDEN cat"}, {"prompt": "ok", "negative_prompt": "forbidden"}):
        status, answer = await api.call("POST", T2V, json=body)
        api.assert_error(status, answer, 400, 1301)
    lip = {"mode": "text2video", "text": "say forbidden", "voice_id": "v"}
    lip["video_id"] = api.emu.add_video().video_id
    status, answer = await api.call("POST", LIP_SYNC, json={"input": lip})
    api.assert_error(status, answer, 400, 1301)
    assert api.emu.stats.created == 0
    status, answer = await api.call("POST", T2V, json={"prompt": "forbiddenly fine"})
    assert (status, answer["code"]) == (200, 0)


@pytest.mark.parametrize("emulator_options", [{"allowed_ips": ["10.9.8.7"]}])
async def test_an_ip_outside_the_allowlist_is_1304_on_every_route(api: Any) -> None:
    for method, path in (("POST", T2V), ("GET", T2V), ("GET", f"{T2V}/1")):
        status, answer = await api.call(method, path, json={"prompt": "x"})
        api.assert_error(status, answer, 429, 1304)


@pytest.mark.parametrize("emulator_options", [{"allowed_ips": ["127.0.0.1"]}])
async def test_an_allowed_ip_is_served(api: Any) -> None:
    status, answer = await api.call("POST", T2V, json={"prompt": "x"})
    assert (status, answer["code"]) == (200, 0)


REFUSALS: list[tuple[dict[str, Any], int, type[Exception]]] = [
    ({"account_state": "arrears"}, 1101, AccountError),
    ({"account_state": "abnormal"}, 1100, AccountError),
    ({"forbidden": ["video-extend"]}, 1103, PermissionDeniedError),
    ({"blocked_prompts": ["boom"]}, 1301, PolicyError),
    ({"allowed_ips": []}, 1304, PolicyError),
]


@pytest.mark.parametrize(("knobs", "code", "error"), REFUSALS)
async def test_the_client_raises_each_refusal_once_without_retrying(
    make_emulator: Any, make_client: Any, knobs: dict[str, Any], code: int, error: type
) -> None:
    emu = await make_emulator(**knobs)
    seed = emu.add_video()
    kling = make_client(emu)
    with pytest.raises(error) as caught:
        await kling.extend_video(seed.video_id, prompt="boom")
    assert caught.value.code == code
    assert caught.value.retryable is False
    assert emu.stats.created == 0
    assert sum(n for (m, r, _), n in emu.stats.requests.items() if r == "create") == 1


@pytest.mark.parametrize(("code", "error"), [(1000, AuthenticationError), (1300, PolicyError)])
async def test_the_client_maps_planned_refusals(
    make_emulator: Any, make_client: Any, code: int, error: type
) -> None:
    emu = await make_emulator()
    emu.refuse(code)
    kling = make_client(emu)
    with pytest.raises(error) as caught:
        await kling.extend_video(emu.add_video().video_id)
    assert caught.value.code == code and not isinstance(caught.value, ServerError)
    assert emu.stats.created == 0
