"""``resource_packs()``: the account's packs over ``GET /account/costs`` (kling-api-more-kinds.md
11), read by the converter, kept at QPS <= 1 on the client's clock; hostile answers refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kling_async import (
    FakeClock,
    KlingClient,
    NotFoundError,
    PermissionDeniedError,
    RequestValidationError,
    ResponseFormatError,
    RetryPolicy,
)

from .conftest import MakeClient, MakeEmulator, requests_to


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)


async def test_packs_follow_the_emulators_per_type_balances(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(packs={"video": 10, "image": 4})
    kling = make_client(emu)
    await kling.extend_video(emu.add_video().video_id)
    packs = await kling.resource_packs()
    assert packs.request_id
    by_product = {p.product: p for p in packs.packs}
    assert set(by_product) == {"video", "image"}
    video = by_product["video"]
    assert (video.total_quantity, video.remaining_quantity, video.status) == (10.0, 9.0, "online")
    assert len(video.resource_pack_id) == 32 and video.resource_pack_type == "decreasing_total"
    assert 0 < video.purchase_time <= video.effective_time < video.invalid_time
    now_ms = round(kling.clock.time() * 1000)
    assert packs.remaining("video", now_ms=now_ms) == 9.0
    assert packs.remaining("try-on", now_ms=now_ms) == 0.0
    assert packs.remaining("video", now_ms=video.invalid_time) == 0.0  # lapsed by then


async def test_one_balance_is_one_pack_of_no_product_and_runs_out(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(balance_units=1)
    kling = make_client(emu)
    await kling.extend_video(emu.add_video().video_id)
    (pack,) = (await kling.resource_packs()).packs
    assert (pack.product, pack.remaining_quantity, pack.status) == (None, 0.0, "runOut")
    assert (await kling.resource_packs()).remaining(None, now_ms=0) == 0.0  # runOut: not usable


async def test_the_window_and_the_name_select_packs(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(packs={"video": 1, "try-on": 2})
    kling = make_client(emu)
    (video,) = [p for p in (await kling.resource_packs()).packs if p.product == "video"]
    bought = video.purchase_time
    assert (await kling.resource_packs(start_time=0, end_time=bought - 1)).packs == ()
    named = await kling.resource_packs(resource_pack_name="Virtual Try-on - emulator")
    assert [p.product for p in named.packs] == ["try-on"]
    assert (await kling.resource_packs(start_time=bought, end_time=bought)).packs


async def test_calls_are_spaced_one_second_apart_on_the_clients_clock(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    import asyncio

    emu = await make_emulator()
    kling = make_client(emu)
    start = clock.time()
    await asyncio.gather(*(kling.resource_packs() for _ in range(3)))
    await kling.resource_packs()
    assert clock.time() - start >= 3.0
    statuses = {s for (_, r, s) in emu.stats.requests if r == "account"}
    assert statuses == {200}  # the emulator refuses a second call within 1 s with 1302
    assert requests_to(emu, "account") == 4


async def test_the_emulator_refuses_a_flood_with_1302(make_emulator: MakeEmulator) -> None:
    emu = await make_emulator()
    key = emu.client_kwargs("key")["api_key"]
    query = {"start_time": "0", "end_time": "99999999999999"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        answers = []
        for params in (query, query, {"end_time": "1"}, {"start_time": "x", "end_time": "1"}):
            async with http.get(emu.url + "/account/costs", params=params) as resp:
                answers.append((resp.status, (await resp.json())["code"]))
            await emu.clock.advance(0.5)
    assert answers == [(200, 0), (429, 1302), (400, 1201), (400, 1201)]


async def test_a_relay_has_no_costs_route(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    with pytest.raises(NotFoundError):
        await make_client(emu, "relay").resource_packs()


@pytest.mark.parametrize(
    "window",
    [{"start_time": 5, "end_time": 4}, {"start_time": True}, {"end_time": -1}, {"end_time": 1.5}],
)
async def test_a_bad_window_is_refused_before_any_request(
    make_emulator: MakeEmulator, make_client: MakeClient, window: dict[str, Any]
) -> None:
    emu = await make_emulator()
    with pytest.raises(RequestValidationError):
        await make_client(emu).resource_packs(**window)
    assert requests_to(emu, "account") == 0


LIST = "resource_pack_subscribe_infos"
HOSTILE: list[tuple[Any, type[Exception]]] = [
    ({"code": 1103, "msg": "not for you"}, PermissionDeniedError),
    ([1, 2], ResponseFormatError),
    ({"code": 0, LIST: [{"total_quantity": "lots"}]}, ResponseFormatError),
    ({"code": 0, LIST: [{"remaining_quantity": "nan"}]}, ResponseFormatError),
    ({"code": 0, LIST: [{"purchase_time": [1]}]}, ResponseFormatError),
    ({"code": 0, LIST: {"not": "a list"}}, ResponseFormatError),
]


@pytest.mark.parametrize(("data", "error"), HOSTILE)
async def test_hostile_answers_raise_typed_errors(
    data: Any, error: type[Exception], clock: FakeClock
) -> None:
    async def costs(request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "message": "SUCCEED", "request_id": "r", "data": data})

    app = web.Application()
    app.router.add_get("/account/costs", costs)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with KlingClient(
            api_key="k", base_url=f"http://{host}:{port}", clock=clock, retry=RetryPolicy.no_wait()
        ) as kling:
            with pytest.raises(error):
                await kling.resource_packs()
    finally:
        await runner.cleanup()


async def test_a_missing_list_reads_as_no_packs(clock: FakeClock) -> None:
    from kling_async.serde import structure_resource_packs

    assert structure_resource_packs({"code": 0, "msg": ""}).packs == ()
    assert structure_resource_packs({"resource_pack_subscribe_infos": None}).packs == ()
