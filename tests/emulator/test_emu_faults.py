"""Every fault kind, seen by a plain aiohttp client over a real socket."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kling_async.testing import Fault, KlingEmulator

EXTEND = "/v1/videos/video-extend"
HEADERS = {"Authorization": "Bearer emu-static-key"}


@pytest.fixture
async def fresh() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that opens a new connection per request: aiohttp silently retries idempotent
    requests once when a *reused* connection drops, which would hide a dropped GET."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


async def raw(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, str, bytes]:
    async with session.request(method, url, headers=HEADERS, **kwargs) as r:
        return r.status, r.content_type, await r.read()


async def post_extend(emu: KlingEmulator, session: aiohttp.ClientSession, **extra: Any) -> Any:
    body = {"video_id": emu.add_video().video_id, **extra}
    return await raw(session, "POST", emu.url + EXTEND, json=body)


def no_server_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [], [r.getMessage() for r in loud]


async def test_gateway_html_502_creates_nothing(emu: KlingEmulator, http: Any) -> None:
    emu.fault(Fault.GATEWAY_HTML_502)
    status, content_type, body = await post_extend(emu, http)
    assert (status, content_type) == (502, "text/html")
    assert b"502 Bad Gateway" in body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert emu.stats.created == 0
    assert emu.stats.requests[("POST", "create", 502)] == 1


@pytest.mark.parametrize(
    ("fault", "http_status", "code"),
    [
        (Fault.SERVER_5000, 500, 5000),
        (Fault.SERVER_5001, 503, 5001),
        (Fault.SERVER_5002, 504, 5002),
        (Fault.NONZERO_CODE_200, 200, 5000),
    ],
)
async def test_server_errors_are_json_envelopes_and_create_nothing(
    api: Any, fault: Fault, http_status: int, code: int
) -> None:
    api.emu.fault(fault)
    status, answer = await api.create({"video_id": api.emu.add_video().video_id})
    api.assert_error(status, answer, http_status, code)
    assert api.emu.stats.created == 0
    status, _ = await api.create({"video_id": api.emu.add_video().video_id})
    assert status == 200  # times=1: the next one is fine


async def test_drop_before_closes_the_socket_and_creates_nothing(
    emu: KlingEmulator, fresh: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.fault(Fault.DROP_BEFORE)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await post_extend(emu, fresh)
    assert emu.stats.created == 0
    assert emu.stats.requests[("POST", "create", 0)] == 1
    no_server_errors_logged(caplog)


async def test_drop_after_create_really_creates_one_task(
    emu: KlingEmulator, fresh: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.fault(Fault.DROP_AFTER_CREATE)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await post_extend(emu, fresh, external_task_id="lost-answer")
    assert emu.stats.created == 1
    status, _, body = await raw(fresh, "GET", emu.url + EXTEND + "/lost-answer")
    assert status == 200
    assert json.loads(body)["data"]["task_info"]["external_task_id"] == "lost-answer"
    no_server_errors_logged(caplog)


async def test_drops_on_get_routes(emu: KlingEmulator, fresh: aiohttp.ClientSession) -> None:
    # aiohttp's client resends an idempotent request once when the server disconnects, so a
    # GET only fails when two answers in a row are dropped.
    seed = emu.add_video()
    emu.fault(Fault.DROP_BEFORE, route="get", times=2)
    emu.fault(Fault.DROP_AFTER_CREATE, route="list", times=2)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await raw(fresh, "GET", f"{emu.url}/v1/videos/text2video/{seed.task_id}")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await raw(fresh, "GET", emu.url + EXTEND)
    assert emu.stats.requests[("GET", "get", 0)] == emu.stats.requests[("GET", "list", 0)] == 2
    emu.fault(Fault.DROP_BEFORE, route="get")
    status, _, _ = await raw(fresh, "GET", f"{emu.url}/v1/videos/text2video/{seed.task_id}")
    assert status == 200  # the silent resend got through


async def test_slow_answers_let_client_timeouts_fire_after_the_create(emu: KlingEmulator) -> None:
    emu.fault(Fault.SLOW, delay=0.5)
    timeout = aiohttp.ClientTimeout(sock_read=0.05)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            await post_extend(emu, session)
    assert emu.stats.created == 1


async def test_slow_answers_arrive_late_but_whole(emu: KlingEmulator, http: Any) -> None:
    emu.fault(Fault.SLOW, route="list", delay=0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, body = await raw(http, "GET", emu.url + EXTEND)
    assert loop.time() - started >= 0.1
    assert (status, json.loads(body)["code"]) == (200, 0)


@pytest.mark.parametrize("fault", [Fault.TRUNCATED_JSON, Fault.MALFORMED_JSON])
async def test_broken_json_on_create_after_the_task_exists(
    emu: KlingEmulator, http: Any, fault: Fault
) -> None:
    emu.fault(fault)
    status, content_type, body = await post_extend(emu, http)
    assert (status, content_type) == (200, "application/json")
    assert body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert emu.stats.created == 1


async def test_unknown_status_on_create_get_and_list(api: Any) -> None:
    api.emu.fault(Fault.UNKNOWN_STATUS, route="any", times=3)
    created = await api.created({"video_id": api.emu.add_video().video_id})
    assert created["task_status"] == "queued"
    assert (await api.task(created["task_id"]))["task_status"] == "queued"
    _, answer = await api.list()
    assert [t["task_status"] for t in answer["data"]] == ["queued"]
    assert (await api.task(created["task_id"]))["task_status"] == "submitted"


async def test_extra_fields_at_envelope_and_task_level(api: Any) -> None:
    api.emu.fault(Fault.EXTRA_FIELDS, route="any", times=2)
    status, answer = await api.create({"video_id": api.emu.add_video().video_id})
    assert status == 200
    assert set(answer) > {"code", "message", "request_id", "data"}
    data = answer["data"]
    assert set(data) > {"task_id", "task_status", "task_info", "created_at", "updated_at"}
    assert data["task_result"] == {"images": [], "videos": None}
    status, answer = await api.get(data["task_id"])
    normal = api.emu.task_json(data["task_id"])
    assert set(answer["data"]) > set(normal)
    assert set(answer["data"]["task_info"]) > set(normal["task_info"])
    assert answer["data"]["task_result"] == normal["task_result"]


async def test_faults_hit_before_authentication(emu: KlingEmulator, http: Any) -> None:
    emu.fault(Fault.SERVER_5001, route="list")
    async with http.get(emu.url + EXTEND) as r:
        assert (r.status, (await r.json())["code"]) == (503, 5001)


async def test_times_routes_and_clearing(api: Any) -> None:
    api.emu.fault(Fault.SERVER_5000, route="list", times=2)
    api.emu.fault(Fault.SERVER_5002, route="any", times=None)
    statuses = [(await api.list())[0] for _ in range(4)]
    assert statuses == [500, 500, 504, 504]
    assert (await api.get("123"))[0] == 504
    api.emu.clear_faults()
    assert (await api.list())[0] == 200


def statuses_under_random_faults(seed: int) -> list[int]:
    async def run() -> list[int]:
        async with KlingEmulator() as emu, aiohttp.ClientSession() as session:
            emu.random_faults(0.5, kinds=(Fault.SERVER_5000, Fault.SERVER_5001), seed=seed)
            out = []
            for _ in range(20):
                out.append((await raw(session, "GET", emu.url + EXTEND))[0])
            return out

    return asyncio.run(run())


def test_random_faults_are_seeded() -> None:
    first, again, other = (statuses_under_random_faults(s) for s in (1, 1, 2))
    assert first == again
    assert first != other
    assert {200, 500, 503} == set(first)


async def test_random_faults_respect_route_and_planned_faults_come_first(api: Any) -> None:
    api.emu.random_faults(1.0, kinds=[Fault.SERVER_5002], route="get")
    assert (await api.list())[0] == 200
    assert (await api.get("123"))[0] == 504
    api.emu.fault(Fault.SERVER_5000, route="get")
    assert (await api.get("123"))[0] == 500
    assert (await api.get("123"))[0] == 504


async def test_random_faults_of_a_named_route_stand_beside_any_and_replace_their_own(
    api: Any,
) -> None:
    api.emu.random_faults(1.0, kinds=[Fault.SERVER_5001], route="any")
    api.emu.random_faults(1.0, kinds=[Fault.SERVER_5002], route="get")
    assert (await api.get("123"))[0] == 504  # the route's own source
    assert (await api.list())[0] == 503  # the others: "any"
    api.emu.random_faults(1.0, kinds=[Fault.SERVER_5000], route="get")
    assert (await api.get("123"))[0] == 500
    api.emu.random_faults(1.0, kinds=[Fault.SPURIOUS_1303], route="any")  # replaces them all
    status, answer = await api.get("123")
    assert (status, answer["code"]) == (429, 1303)


def test_fault_arguments_are_checked() -> None:
    emu = KlingEmulator()
    with pytest.raises(ValueError, match="route"):
        emu.fault(Fault.SLOW, route="download")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        emu.fault(Fault.SLOW, times=0)
    with pytest.raises(ValueError, match="rate"):
        emu.random_faults(1.5)
    with pytest.raises(ValueError, match="kinds"):
        emu.random_faults(0.1, kinds=())
