"""Unsigned callbacks from a hostile sender: bounded memory, one key for every unknown status,
a limit on the confirming polls one task can be made to cost, a warning at set-up, and the
FastAPI example's bounded body."""

from __future__ import annotations

import gc
import json
import logging
import tracemalloc
from collections.abc import Callable

import aiohttp
import httpx
import pytest

from kling_async import FakeClock, KlingClient
from kling_async.testing import Durations
from kling_async.webhooks import CallbackReceiver, aiohttp_handler

from ..conftest import MakeClient, MakeEmulator, requests_to
from ..test_examples import load
from ..watching import settle
from ..webhooks.common import SECRET
from .hostile import HostileServer

KiB = 1 << 10


def body(task_id: str, status: str) -> bytes:
    return json.dumps({"task_id": task_id, "task_status": status, "created_at": 1}).encode()


async def post_all(url: str, bodies: list[bytes], ids: list[str] | None = None) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as http:
        for i, raw in enumerate(bodies):
            headers = {"content-type": "application/json"}
            if ids is not None:
                headers["webhook-id"] = ids[i]
            async with http.post(url, data=raw, headers=headers) as response:
                statuses.append(response.status)
    return statuses


async def start_watch(kling: KlingClient, task_id: str) -> None:
    """Follow ``task_id`` until its first observation (the scheduler then knows the task)."""
    watch = kling.watch([task_id], open_ended=True)
    changes = watch.__aiter__()
    await changes.__anext__()


async def test_forged_unknown_statuses_cost_one_confirming_poll(
    make_emulator: MakeEmulator, make_client: MakeClient, server: HostileServer
) -> None:
    emu = await make_emulator(durations=Durations(queued=1000, running=1000))
    kling = make_client(emu)
    task = await kling.extend_video(emu.add_video().video_id)
    await start_watch(kling, task.task_id)
    await settle(kling)
    receiver = CallbackReceiver(client=kling)
    server.on("/cb", aiohttp_handler(receiver))
    before = requests_to(emu, "query")
    bodies = [body(task.task_id, f"invented-{i}") for i in range(60)]
    assert set(await post_all(server.url + "/cb", bodies)) == {200}
    await settle(kling)
    assert receiver.accepted == 1 and receiver.duplicates == 59
    assert requests_to(emu, "query") - before <= 1


async def test_confirming_polls_per_task_are_limited_even_when_memory_is_flushed(
    make_emulator: MakeEmulator, make_client: MakeClient, server: HostileServer
) -> None:
    emu = await make_emulator(durations=Durations(queued=1000, running=1000))
    kling = make_client(emu)
    task = await kling.extend_video(emu.add_video().video_id)
    await start_watch(kling, task.task_id)
    await settle(kling)
    receiver = CallbackReceiver(client=kling, remember=2, max_unsigned_per_task=3)
    server.on("/cb", aiohttp_handler(receiver))
    before = requests_to(emu, "query")
    cycle = ["processing", "succeed", "failed"] * 10
    await post_all(server.url + "/cb", [body(task.task_id, s) for s in cycle])
    await settle(kling)
    assert receiver.accepted == 3
    assert requests_to(emu, "query") - before <= 3


async def test_the_memory_of_repeats_keeps_no_attacker_sized_keys(server: HostileServer) -> None:
    receiver = CallbackReceiver()
    server.on("/cb", aiohttp_handler(receiver))
    bodies = [body(f"{i}-" + "t" * (200 * KiB), "processing") for i in range(40)]
    ids = [f"{i}-" + "w" * 4000 for i in range(40)]
    gc.collect()
    tracemalloc.start()
    try:
        statuses = await post_all(server.url + "/cb", bodies, ids)
        del bodies
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert set(statuses) == {200} and receiver.accepted == 40
    assert kept < 1 << 20, f"kept {kept / KiB:.0f} KiB"


def test_a_receiver_without_a_secret_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kling_async")
    CallbackReceiver(secret=SECRET)
    assert not caplog.records
    CallbackReceiver()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "no secret" in caplog.records[0].getMessage()


async def test_the_fastapi_example_refuses_a_huge_callback_body(
    make_emulator: MakeEmulator, clock: FakeClock
) -> None:
    emu = await make_emulator()
    example = load("fastapi_app")
    factory: Callable[[], KlingClient] = lambda: KlingClient(**emu.client_kwargs(), clock=clock)  # noqa: E731
    app = example.create_app(client_factory=factory)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as http,
    ):
        receiver: CallbackReceiver = app.state.callbacks
        huge = b'{"task_id":"1","task_status":"succeed","pad":"' + b"x" * (3 << 20) + b'"}'
        refused = await http.post("/kling/callback", content=huge)
        assert refused.status_code == 413
        assert (receiver.accepted, receiver.refused) == (0, 0)

        async def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted
            for _ in range(3):
                yield b"x" * (1 << 20)

        streamed = await http.post("/kling/callback", content=chunks())
        assert streamed.status_code == 413
        fine = await http.post("/kling/callback", content=body("1", "succeed"))
        assert fine.status_code == 200 and receiver.accepted == 1
