"""The integrations in ``examples/``, each driven over HTTP against the emulator."""

from __future__ import annotations

import asyncio
import base64
import collections
import importlib.util
import io
import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web

from kling_async import FakeClock, KlingClient, RetryPolicy, ScaledClock
from kling_async.testing import Durations, KlingEmulator
from kling_async.webhooks.signing import sign

from .conftest import requests_to

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SECRET = "whsec_" + base64.b64encode(b"kling-async-examples-test-secret").decode()


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"kling_examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def client_factory(emu: KlingEmulator, clock: Any) -> Callable[[], KlingClient]:
    return lambda: KlingClient(**emu.client_kwargs("key"), clock=clock, retry=RetryPolicy.no_wait())


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def signed(body: bytes, at: float, msg_id: str = "msg_1") -> dict[str, str]:
    stamp = int(at)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(SECRET, msg_id, stamp, body),
    }


async def test_fastapi_app_extends_streams_and_takes_callbacks() -> None:
    example = load("fastapi_app")
    server_clock, client_clock = FakeClock(), FakeClock()
    async with KlingEmulator(clock=server_clock) as emu:
        parent = emu.add_video()
        app = example.create_app(
            client_factory=client_factory(emu, client_clock), webhook_secret=SECRET
        )
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://app") as http,
        ):
            kling: KlingClient = app.state.kling
            refused = await http.post(f"/videos/{parent.video_id}/extend", json={"cfg_scale": 3})
            assert refused.status_code == 422
            assert refused.json()["detail"]["field"] == "cfg_scale"
            assert emu.stats.created == 0

            started = await http.post(
                f"/videos/{parent.video_id}/extend", json={"prompt": "pull back"}
            )
            assert started.status_code == 202, started.text
            task_id = started.json()["task_id"]
            assert started.json()["status"] == "submitted"

            stream = asyncio.ensure_future(http.get(f"/tasks/{task_id}/events"))
            for _ in range(500):  # until the watch has seen the task once
                if kling.scheduler.polls_sent and not kling.scheduler.in_flight:
                    break
                await asyncio.sleep(0.01)
            assert kling.scheduler.tracked == 1 and not stream.done()

            # The task ends on the server; the client's clock stands still, so no poll will
            # notice: only the callback can end the stream.
            await server_clock.advance(400)
            body = json.dumps(emu.task_json(task_id)).encode()
            forged = await http.post("/kling/callback", content=body)
            assert forged.status_code == 401
            delivered = await http.post(
                "/kling/callback", content=body, headers=signed(body, client_clock.time())
            )
            assert delivered.status_code == 200, delivered.text

            events = sse_events((await asyncio.wait_for(stream, 10)).text)
            assert [(e, d.get("status")) for e, d in events] == [
                ("status", "submitted"),
                ("status", "succeed"),
                ("end", None),
            ]
            assert events[1][1]["video"]["url"]
            assert requests_to(emu, "get") == 1  # the first look; the end came by callback

            now = await http.get(f"/tasks/{task_id}")
            assert now.status_code == 200 and now.json()["status"] == "succeed"
        assert kling.closed  # the lifespan closed the app's one client


async def test_aiohttp_app_gets_callbacks_from_the_emulator_over_sockets() -> None:
    example = load("aiohttp_app")
    clock = ScaledClock(200.0)
    durations = Durations(queued=2, running=60)
    async with KlingEmulator(clock=clock, durations=durations, webhook_secret=SECRET) as emu:
        parent = emu.add_video()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = example.create_app(
            client_factory=client_factory(emu, clock), public_url=url, webhook_secret=SECRET
        )
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            async with aiohttp.ClientSession(base_url=url) as http:
                async with http.post(
                    f"/videos/{parent.video_id}/extend", json={"prompt": "pull back"}
                ) as started:
                    assert started.status == 202, await started.text()
                    task_id = (await started.json())["task_id"]
                async with http.get(f"/tasks/{task_id}/events") as stream:
                    assert stream.headers["Content-Type"] == "text/event-stream"
                    text = (await asyncio.wait_for(stream.read(), 20)).decode()
                async with http.get(f"/tasks/{task_id}") as now:
                    assert (await now.json())["status"] == "succeed"
            events = sse_events(text)
            assert events[-1][0] == "end"
            assert [d["status"] for e, d in events if e == "status"][-1] == "succeed"
            receiver = app[example.CALLBACKS]
            assert receiver.accepted >= 1
            delivered = [c for c in emu.callbacks if c.url == f"{url}/kling/callback"]
            assert delivered and all(c.http_status == 200 for c in delivered)
        finally:
            await runner.cleanup()
            sock.close()
        assert app[example.KLING].closed


async def test_bulk_script_extends_everything_and_resumes(tmp_path: Path) -> None:
    example = load("bulk_extend")
    clock = ScaledClock(300.0)
    durations = Durations(queued=2, running=60)
    async with KlingEmulator(clock=clock, durations=durations, slot_limit=5) as emu:
        videos = [emu.add_video() for _ in range(8)]
        source = tmp_path / "videos.jsonl"
        source.write_text(
            "".join(
                json.dumps({"video_id": v.video_id, "task_id": v.task_id, "prompt": f"shot {i}"})
                + "\n"
                for i, v in enumerate(videos)
            )
        )
        requests = example.read_requests(source)
        assert [r.parent_task_id for r in requests] == [v.task_id for v in videos]
        journal = str(tmp_path / "videos.journal.sqlite")
        first, second = io.StringIO(), io.StringIO()
        async with KlingClient(**emu.client_kwargs(), clock=clock) as kling:
            assert await example.extend_all(kling, requests, journal, first) == 0
            assert emu.stats.created == 8
            assert await example.extend_all(kling, requests, journal, second) == 0  # resumed
            assert emu.stats.created == 8
    for results in (first, second):
        rows = [json.loads(line) for line in results.getvalue().splitlines()]
        assert len(rows) == 8 and {r["outcome"] for r in rows} == {"succeed"}
        assert all(r["result"].endswith(".mp4") for r in rows)


@pytest.mark.parametrize("reading", ["refuse", "accept"])
async def test_fastapi_app_under_retries_makes_one_task_per_key_and_never_hangs(
    reading: str,
) -> None:
    """200 concurrent extends on a 10-slot account, each client retrying once with the same
    Idempotency-Key when no answer came within 1 s — while its first try goes on (uvicorn
    does not cancel a handler whose client left). One task per key; every answer (202 with the
    task, or 503 with Retry-After) within ``slot_timeout`` + 1 s."""
    example = load("fastapi_app")
    slot_timeout = 3.0
    async with KlingEmulator(
        slot_limit=10, durations=Durations(queued=1, running=600), duplicate_external_id=reading
    ) as emu:
        parent = emu.add_video()

        def factory() -> KlingClient:
            return KlingClient(
                **emu.client_kwargs("key"), retry=RetryPolicy.no_wait(), slot_timeout=slot_timeout
            )

        app = example.create_app(client_factory=factory)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://app", timeout=30) as http,
        ):
            loop = asyncio.get_running_loop()
            took: list[float] = []

            async def post(key: str) -> httpx.Response:
                started = loop.time()
                response = await http.post(
                    f"/videos/{parent.video_id}/extend",
                    json={"prompt": key},
                    headers={"Idempotency-Key": key},
                )
                took.append(loop.time() - started)
                return response

            async def impatient(key: str) -> list[httpx.Response]:
                first = asyncio.ensure_future(post(key))
                done, _ = await asyncio.wait({first}, timeout=1.0)
                if done:
                    return [first.result()]
                again = await post(key)  # the first try goes on meanwhile
                return [await first, again]

            answers = await asyncio.gather(*(impatient(f"order-{i}") for i in range(200)))
    per_key: dict[str, set[str]] = {}
    for i, responses in enumerate(answers):
        for response in responses:
            assert response.status_code in (202, 503), response.text
            if response.status_code == 503:
                assert response.headers["retry-after"] == "30"
            else:
                per_key.setdefault(f"order-{i}", set()).add(response.json()["task_id"])
    assert all(len(ids) == 1 for ids in per_key.values()), per_key
    by_external = collections.Counter(t.external_task_id for t in emu.tasks.values())
    assert by_external and max(by_external.values()) == 1  # one task per key, paid once
    assert emu.stats.created == len(per_key) == 10  # the account's 10 slots, then 503s
    assert sum(len(r) for r in answers) > 200  # the clients did retry
    assert max(took) <= slot_timeout + 1.0, sorted(took)[-5:]
