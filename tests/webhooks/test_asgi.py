"""The ASGI app: answers, streamed bodies, lifespan, and mounted in FastAPI feeding a watch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.routing import Route

from kling_async import FakeClock, StatusChange
from kling_async.testing import Durations
from kling_async.webhooks import CallbackReceiver, asgi_app

from ..conftest import MakeClient, MakeEmulator
from .common import OK, SECRET, P, S, assert_once_each, collect, drive, legacy_body, signed


def asgi_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_asgi_app_answers() -> None:
    clock = FakeClock()
    receiver = CallbackReceiver(secret=SECRET, clock=clock)
    body = legacy_body()
    async with asgi_client(asgi_app(receiver, max_body=4096)) as http:
        ok = await http.post("/", content=body, headers=signed(body, clock.time()))
        assert (ok.status_code, ok.json()) == (200, {"ok": True})
        assert ok.headers["content-type"] == "application/json"
        again = await http.post("/", content=body, headers=signed(body, clock.time(), "m2"))
        assert (again.status_code, again.json()) == (200, {"ok": True})
        bad = await http.post("/", content=body, headers=signed(body + b" ", clock.time()))
        assert bad.status_code == 401 and bad.json()["ok"] is False
        junk = b'{"hello": "world"}'
        malformed = await http.post("/", content=junk, headers=signed(junk, clock.time()))
        assert malformed.status_code == 400
        assert (await http.get("/")).status_code == 405
        huge = b"{" + b" " * 5000 + b"}"
        assert (await http.post("/", content=huge)).status_code == 413
    assert (receiver.accepted, receiver.duplicates, receiver.refused) == (1, 1, 2)


async def test_asgi_app_reads_a_streamed_body_and_limits_it() -> None:
    receiver = CallbackReceiver()
    body = legacy_body()

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    async with asgi_client(asgi_app(receiver, max_body=len(body))) as http:
        ok = await http.post("/", content=chunks(body))  # chunked: no content-length
        assert ok.status_code == 200
        too_big = await http.post("/", content=chunks(body + b"  "))
        assert too_big.status_code == 413
    assert receiver.accepted == 1


async def test_asgi_app_handles_lifespan() -> None:
    app = asgi_app(CallbackReceiver())
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_asgi_app_in_fastapi_feeds_the_watch(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=100))
    kling = make_client(emu)
    receiver = CallbackReceiver(secret=SECRET, client=kling)
    api = FastAPI()
    api.mount("/kling-callback", asgi_app(receiver))
    api.router.routes.append(Route("/exact", asgi_app(receiver), methods=["POST"]))
    task = await kling.extend_video(emu.add_video().video_id)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task]), changes))
    await drive(clock, emu, (kling,), lambda: len(changes) == 1)
    polls = kling.scheduler.polls_sent

    async with asgi_client(api) as http:
        await clock.advance(3)  # `processing` began at 2 s; the first poll is not due before 9 s
        processing = json.dumps(emu.task_json(task.task_id)).encode()
        resp = await http.post(
            "/kling-callback/", content=processing, headers=signed(processing, clock.time())
        )
        assert resp.status_code == 200
        for _ in range(3):
            await asyncio.sleep(0)
        assert [c.current for c in changes] == [S, P]  # yielded on the callback alone
        assert kling.scheduler.polls_sent == polls

        assert (await http.get("/exact")).status_code == 405
        bad = await http.post("/exact", content=processing, headers={"webhook-id": "x"})
        assert bad.status_code == 401
        garbage = b"[]"
        assert (
            await http.post("/exact", content=garbage, headers=signed(garbage, clock.time()))
        ).status_code == 400

        await clock.advance(100)  # past the end at 102 s; the next poll is due at 123 s
        done = json.dumps(emu.task_json(task.task_id)).encode()
        resp = await http.post("/exact", content=done, headers=signed(done, clock.time(), "m2"))
        assert resp.status_code == 200
    await consumer
    assert_once_each(changes, [S, P, OK])
    assert kling.scheduler.polls_sent == polls


async def test_asgi_app_passes_the_query_string_to_listeners() -> None:
    receiver = CallbackReceiver()
    heard: list[str] = []
    stop = receiver.listen(lambda event: heard.append(event.query))
    async with asgi_client(asgi_app(receiver)) as http:
        ok = await http.post("/?site=a&ka_ref=tok", content=legacy_body())
        assert ok.status_code == 200
        stop()  # a stopped listener hears nothing more
        await http.post("/?ka_ref=other", content=legacy_body(status="succeed"))
    assert heard == ["site=a&ka_ref=tok"]
    assert receiver.accepted == 2
