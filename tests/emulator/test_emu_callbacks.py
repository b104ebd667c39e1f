"""Callbacks (kling-api.md 6): one bare task object per status, signed when a secret is set."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kling_async.clock import FakeClock, ScaledClock
from kling_async.testing import Durations, KlingEmulator
from kling_async.webhooks.signing import SignatureError, sign, verify

SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
EXTEND = "/v1/videos/video-extend"


def test_standard_webhooks_official_vector() -> None:
    body = (
        b'{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,'
        b'"update_time":1781080794151}'
    )
    expected = "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="
    assert sign(SECRET, "9876543210", 1781080794, body) == expected
    verify(
        SECRET,
        msg_id="9876543210",
        timestamp="1781080794",
        signature=expected,
        body=body,
        now=1781080794,
    )


@pytest.fixture
async def signed(clock: FakeClock) -> AsyncIterator[KlingEmulator]:
    async with KlingEmulator(clock=clock, webhook_secret=SECRET) as emu:
        yield emu


async def extend_with_callback(
    emu: KlingEmulator, http: aiohttp.ClientSession, url: str, **extra: Any
) -> str:
    body = {"video_id": emu.add_video().video_id, "callback_url": url, **extra}
    async with http.post(
        emu.url + EXTEND, json=body, headers={"Authorization": "Bearer emu-static-key"}
    ) as r:
        task_id: str = (await r.json())["data"]["task_id"]
    return task_id


async def test_one_bare_task_object_per_status_in_order(
    api: Any, clock: FakeClock, receiver: Any
) -> None:
    task_id = await extend_with_callback(api.emu, api.http, receiver.url)
    await api.emu.flush_callbacks()
    assert len(receiver.received) == 1
    await clock.advance(5)
    await api.emu.flush_callbacks()
    await clock.advance(315)
    await api.emu.flush_callbacks()
    await clock.advance(1000)
    await api.emu.flush_callbacks()

    payloads = [json.loads(body) for _, body in receiver.received]
    assert [p["task_status"] for p in payloads] == ["submitted", "processing", "succeed"]
    for payload in payloads:
        assert "code" not in payload
        assert "data" not in payload
        assert payload["task_id"] == task_id
    assert payloads[-1] == api.emu.task_json(task_id)
    assert [p["updated_at"] for p in payloads] == [
        payloads[0]["created_at"] + ms for ms in (0, 5_000, 320_000)
    ]
    for headers, _ in receiver.received:
        assert headers["Content-Type"] == "application/json"
        assert "webhook-signature" not in headers

    records = api.emu.callbacks
    assert [(r.status, r.http_status, r.error) for r in records] == [
        ("submitted", 200, None),
        ("processing", 200, None),
        ("succeed", 200, None),
    ]
    assert [r.payload for r in records] == payloads
    assert {r.url for r in records} == {receiver.url}


async def test_a_single_jump_still_sends_every_status_in_order(
    api: Any, clock: FakeClock, receiver: Any
) -> None:
    receiver.first_delay = 0.05  # a slow first delivery must not let later statuses overtake it
    await extend_with_callback(api.emu, api.http, receiver.url)
    await clock.advance(10_000)
    await api.emu.flush_callbacks()
    statuses = [json.loads(body)["task_status"] for _, body in receiver.received]
    assert statuses == ["submitted", "processing", "succeed"]


async def test_one_advance_fires_every_status_without_flushing(
    api: Any, clock: FakeClock, receiver: Any, wait_until: Any
) -> None:
    await extend_with_callback(api.emu, api.http, receiver.url)
    await clock.advance(10_000)
    await wait_until(lambda: len(receiver.received) == 3)
    records = sorted(api.emu.callbacks, key=lambda r: r.at)
    assert [r.at - clock.time() for r in records] == [-10_000, -9_995, -9_680]


async def test_a_later_task_with_earlier_events_is_not_kept_waiting(
    api: Any, clock: FakeClock, receiver: Any, wait_until: Any
) -> None:
    await extend_with_callback(api.emu, api.http, receiver.url)  # next event at t=5
    await clock.advance(6)
    await wait_until(lambda: len(receiver.received) == 2)  # the scheduler sleeps until t=320
    await extend_with_callback(api.emu, api.http, receiver.url)  # its processing: t=11
    await clock.advance(5)
    await wait_until(lambda: len(receiver.received) == 4)
    statuses = [json.loads(body)["task_status"] for _, body in receiver.received]
    assert statuses == ["submitted", "processing", "submitted", "processing"]


async def test_failed_tasks_call_back_with_the_reason(
    clock: FakeClock, http: aiohttp.ClientSession, receiver: Any
) -> None:
    async with KlingEmulator(clock=clock, failure_rate=1.0, durations=Durations(0, 1)) as emu:
        await extend_with_callback(emu, http, receiver.url)
        await clock.advance(1)
        await emu.flush_callbacks()
    last = json.loads(receiver.received[-1][1])
    assert (last["task_status"], last["task_status_msg"]) == (
        "failed",
        "Failure to pass the risk control system",
    )
    assert len(receiver.received) == 3


async def test_signed_callbacks_verify(
    signed: KlingEmulator, clock: FakeClock, http: aiohttp.ClientSession, receiver: Any
) -> None:
    await extend_with_callback(signed, http, receiver.url)
    for step in (0, 5, 315):
        await clock.advance(step)
        await signed.flush_callbacks()
        headers, body = receiver.received[-1]
        check = {
            "msg_id": headers["webhook-id"],
            "timestamp": headers["webhook-timestamp"],
            "signature": headers["webhook-signature"],
        }
        verify(SECRET, **check, body=body, now=clock.time())
        assert int(headers["webhook-timestamp"]) == int(clock.time())
        with pytest.raises(SignatureError):
            verify(SECRET, **check, body=body + b" ", now=clock.time())
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 3
    assert [r.headers["webhook-id"] for r in signed.callbacks] == [
        headers["webhook-id"] for headers, _ in receiver.received
    ]


async def test_delivery_failures_are_recorded_not_raised(
    api: Any, clock: FakeClock, receiver: Any
) -> None:
    receiver.status = 500
    await extend_with_callback(api.emu, api.http, receiver.url)
    await extend_with_callback(api.emu, api.http, "http://127.0.0.1:9/nobody-listens")
    await api.emu.flush_callbacks()
    by_url = {r.url: r for r in api.emu.callbacks}
    assert (by_url[receiver.url].http_status, by_url[receiver.url].error) == (500, None)
    refused = by_url["http://127.0.0.1:9/nobody-listens"]
    assert refused.http_status is None
    assert refused.error


async def test_no_callback_url_no_callbacks(api: Any, clock: FakeClock, receiver: Any) -> None:
    await api.created({"video_id": api.emu.add_video().video_id})
    await clock.advance(400)
    await api.emu.flush_callbacks()
    assert api.emu.callbacks == []


async def test_callbacks_run_on_a_scaled_clock(
    http: aiohttp.ClientSession, receiver: Any, wait_until: Any
) -> None:
    async with KlingEmulator(clock=ScaledClock(1000), durations=Durations(20, 100)) as emu:
        await extend_with_callback(emu, http, receiver.url)
        await wait_until(lambda: len(receiver.received) == 3)  # ~0.12 real seconds
    statuses = [json.loads(body)["task_status"] for _, body in receiver.received]
    assert statuses == ["submitted", "processing", "succeed"]


async def test_closing_cancels_pending_callbacks(
    http: aiohttp.ClientSession, receiver: Any, clock: FakeClock
) -> None:
    before = asyncio.all_tasks()
    emu = KlingEmulator(clock=clock)
    await emu.start()
    await extend_with_callback(emu, http, receiver.url)
    await emu.flush_callbacks()
    assert clock.sleepers == 1  # the scheduler waits for the next status
    await emu.close()
    await emu.close()  # idempotent
    assert clock.sleepers == 0
    assert asyncio.all_tasks() == before
    assert len(receiver.received) == 1


@pytest.mark.timeout(10)  # the bug this guards was a spin that never yields: only a signal ends it
async def test_flush_returns_while_a_finished_delivery_awaits_its_done_callback(
    clock: FakeClock,
) -> None:
    # A delivery that has finished stays in the in-flight set until its done callback runs on a
    # later loop turn. Since Python 3.12, gather() of futures that are all done completes
    # eagerly, without yielding, so a flush that looped on the set spun forever right there
    # (tests/test_callback_recovery.py hung on 3.13). Caught before that turn, on purpose:
    from kling_async.testing._callbacks import CallbackDispatcher

    dispatcher = CallbackDispatcher(clock, lambda task, phase: {}, None)
    finished = asyncio.ensure_future(asyncio.sleep(0))
    await finished
    dispatcher._inflight.add(finished)
    finished.add_done_callback(dispatcher._inflight.discard)  # scheduled, not yet run
    await dispatcher.flush()
    await asyncio.sleep(0)
    assert not dispatcher._inflight
