"""Callbacks: Standard-Webhooks verification, both payload shapes, de-duplication, and callbacks
feeding a watch end to end over real sockets (aiohttp) and through the ASGI app."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from starlette.routing import Route

from kling_async import FakeClock, KlingClient, ResponseFormatError, StatusChange, TaskStatus
from kling_async.serde import structure_task
from kling_async.testing import Durations, Fault, KlingEmulator
from kling_async.webhooks import (
    CallbackEvent,
    CallbackReceiver,
    aiohttp_handler,
    asgi_app,
    parse_callback,
)
from kling_async.webhooks.signing import SignatureError, sign

from .conftest import MakeClient, MakeEmulator
from .watching import settle

S, P, OK, FAIL = (
    TaskStatus.SUBMITTED,
    TaskStatus.PROCESSING,
    TaskStatus.SUCCEED,
    TaskStatus.FAILED,
)

# kling-api.md 6.3, the official test vector.
VECTOR_SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
VECTOR_ID = "9876543210"
VECTOR_TS = 1781080794
VECTOR_BODY = (
    b'{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,'
    b'"update_time":1781080794151}'
)
VECTOR_SIGNATURE = "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="

SECRET_KEY = b"kling-async-webhook-test-key-32b"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()

Serve = Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[str]]


def vector_headers(**override: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    headers.update(override)
    return headers


def signed(body: bytes, at: float, msg_id: str = "msg_1", secret: str = SECRET) -> dict[str, str]:
    stamp = int(at)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
    }


def legacy_body(task_id: str = "815336423632572487", status: str = "processing") -> bytes:
    return json.dumps(
        {
            "task_id": task_id,
            "task_status": status,
            "task_status_msg": "",
            "created_at": 1_700_000_000_000,
            "updated_at": 1_700_000_005_000,
        }
    ).encode()


# -- signatures -------------------------------------------------------------------------------


async def test_the_official_vector_verifies_and_one_changed_byte_does_not() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    event = await receiver.receive(vector_headers(), VECTOR_BODY)
    assert event is not None
    assert event.verified and event.webhook_id == VECTOR_ID and event.shape == "standard"
    assert event.task.task_id == "1234567890" and event.task.task_status is OK

    for i in (0, len(VECTOR_BODY) // 2, len(VECTOR_BODY) - 2):
        tampered = bytearray(VECTOR_BODY)
        tampered[i] ^= 0x01
        fresh = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
        with pytest.raises(SignatureError, match="no webhook signature matches"):
            await fresh.receive(vector_headers(), bytes(tampered))
        assert fresh.refused == 1 and fresh.accepted == 0


async def test_header_names_are_case_insensitive() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    headers = {k.upper() if k.endswith("id") else k.title(): v for k, v in vector_headers().items()}
    assert set(headers) == {"WEBHOOK-ID", "Webhook-Timestamp", "Webhook-Signature"}
    assert await receiver.receive(headers, VECTOR_BODY) is not None


@pytest.mark.parametrize(
    "signatures",
    [
        f"v1,AAAAbm90IHRoZSByaWdodCBvbmU= {VECTOR_SIGNATURE}",
        f"{VECTOR_SIGNATURE} v1,AAAAbm90IHRoZSByaWdodCBvbmU=",
        f"v2,whatever   {VECTOR_SIGNATURE}",
    ],
)
async def test_one_valid_signature_among_several_passes(signatures: str) -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    event = await receiver.receive(vector_headers(**{"webhook-signature": signatures}), VECTOR_BODY)
    assert event is not None and event.verified


async def test_repeated_signature_headers_are_all_tried() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    pairs = [
        ("webhook-id", VECTOR_ID),
        ("webhook-timestamp", str(VECTOR_TS)),
        ("webhook-signature", "v1,AAAAbm90IHRoZSByaWdodCBvbmU="),
        ("Webhook-Signature", VECTOR_SIGNATURE),
    ]
    assert await receiver.receive(pairs, VECTOR_BODY) is not None


async def test_only_wrong_signatures_fail() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    wrong = sign(SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)  # right scheme, another secret
    for header in (wrong, f"v1,AAAA {wrong}", VECTOR_SIGNATURE.replace("v1,", "v2,")):
        with pytest.raises(SignatureError):
            await receiver.receive(vector_headers(**{"webhook-signature": header}), VECTOR_BODY)


@pytest.mark.parametrize(("offset", "ok"), [(-301, False), (301, False), (-299, True), (299, True)])
async def test_stale_and_future_timestamps_fail(offset: float, ok: bool) -> None:
    # the signature is right for its timestamp; only the receiver's clock differs
    receiver = CallbackReceiver(
        secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS + offset)
    )
    if ok:
        assert await receiver.receive(vector_headers(), VECTOR_BODY) is not None
    else:
        with pytest.raises(SignatureError, match="away from now"):
            await receiver.receive(vector_headers(), VECTOR_BODY)


async def test_tolerance_is_configurable() -> None:
    clock = FakeClock(start_time=VECTOR_TS + 30)
    strict = CallbackReceiver(secret=VECTOR_SECRET, clock=clock, tolerance=10)
    with pytest.raises(SignatureError):
        await strict.receive(vector_headers(), VECTOR_BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-timestamp": str(VECTOR_TS), "webhook-signature": VECTOR_SIGNATURE},
        {"webhook-id": VECTOR_ID, "webhook-signature": VECTOR_SIGNATURE},
        {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TS)},
        {},
        vector_headers(**{"webhook-timestamp": "yesterday"}),
        vector_headers(**{"webhook-signature": ""}),
    ],
    ids=["no-id", "no-timestamp", "no-signature", "none", "bad-timestamp", "empty-signature"],
)
async def test_missing_or_malformed_headers_fail(headers: dict[str, str]) -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    with pytest.raises(SignatureError):
        await receiver.receive(headers, VECTOR_BODY)


async def test_conflicting_webhook_ids_fail() -> None:
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS))
    pairs = [*vector_headers().items(), ("webhook-id", "another")]
    with pytest.raises(SignatureError):
        await receiver.receive(pairs, VECTOR_BODY)


async def test_the_secret_never_shows() -> None:
    key_b64 = VECTOR_SECRET.removeprefix("whsec_")
    key = base64.b64decode(key_b64)
    receiver = CallbackReceiver(secret=VECTOR_SECRET, clock=FakeClock(start_time=VECTOR_TS + 999))
    errors: list[BaseException] = []
    for headers, body in (
        (vector_headers(), VECTOR_BODY),  # stale
        ({}, VECTOR_BODY),  # missing
        (vector_headers(**{"webhook-timestamp": str(VECTOR_TS + 999)}), VECTOR_BODY),  # mismatch
    ):
        with pytest.raises(SignatureError) as info:
            await receiver.receive(headers, body)
        errors.append(info.value)
    with pytest.raises(ValueError, match="base64") as bad_secret:
        CallbackReceiver(secret="whsec_" + key_b64[:-3] + "!!!")
    errors.append(bad_secret.value)
    shown = [repr(receiver), str(receiver), repr(asgi_app(receiver))]
    shown += [text for err in errors for text in (str(err), repr(err))]
    for text in shown:
        assert key_b64[:12] not in text and VECTOR_SECRET[:16] not in text
        assert key.decode("latin-1")[:12] not in text
    assert "signed=True" in repr(receiver)


async def test_an_empty_secret_is_refused_rather_than_read_as_unsigned() -> None:
    with pytest.raises(ValueError, match="empty"):
        CallbackReceiver(secret="")


async def test_without_a_secret_events_are_unverified_and_headers_ignored() -> None:
    receiver = CallbackReceiver(clock=FakeClock(start_time=VECTOR_TS + 10_000))
    event = await receiver.receive(vector_headers(**{"webhook-signature": "v1,junk"}), VECTOR_BODY)
    assert event is not None and not event.verified and event.webhook_id == VECTOR_ID
    assert "signed=False" in repr(receiver)


# -- payload shapes ---------------------------------------------------------------------------


def test_a_legacy_callback_reads_like_a_query() -> None:
    data: dict[str, Any] = {
        "task_id": "815336423632572487",
        "task_status": "succeed",
        "task_status_msg": "",
        "created_at": 1_700_000_000_000,
        "updated_at": 1_700_000_320_000,
        "final_unit_deduction": "1",
        "task_info": {
            "external_task_id": "ext-1",
            "parent_video": {"id": "pv", "url": "https://x/p.mp4", "duration": "5"},
        },
        "task_result": {"videos": [{"id": "v2", "url": "https://x/v2.mp4", "duration": "9.5"}]},
        "an_unknown_field": {"is": "ignored"},
    }
    event = parse_callback(json.dumps(data).encode(), kind="video-extend")
    assert event.shape == "legacy" and not event.verified and event.webhook_id is None
    assert event.task == structure_task(data, "video-extend")
    assert event.task.video is not None and event.task.video.duration == 9.5
    assert event.task.external_task_id == "ext-1"
    assert event.payload["an_unknown_field"] == {"is": "ignored"}
    assert parse_callback(json.dumps(data), kind="text2video").task.kind == "text2video"


def test_a_legacy_callback_in_an_envelope_is_unwrapped() -> None:
    body = json.dumps({"code": 0, "message": "SUCCEED", "data": json.loads(legacy_body())})
    event = parse_callback(body.encode())
    assert event.shape == "legacy" and event.task.task_status is P


def test_a_new_standard_callback_maps_onto_a_task() -> None:
    body = {
        "id": 815336423632572487,  # a number on the wire still becomes an exact string
        "status": "succeeded",
        "message": "",
        "create_time": 1781080778802,
        "update_time": 1781080794151,
        "external_id": "order-7",
        "outputs": [
            {"type": "video", "id": "v9", "url": "https://x/v9.mp4", "duration": "10.1"},
            {"type": "image", "url": "https://x/i.png"},
            {"type": "audio", "url": "https://x/a.mp3"},
        ],
        "billing": [
            {"charge_type": "unit", "amount": 2.5, "package_type": "video"},
            {"charge_type": "cash", "amount": "0.3", "currency": "USD"},
        ],
    }
    event = parse_callback(json.dumps(body).encode(), kind="video-extend", webhook_id="m1")
    task = event.task
    assert event.shape == "standard" and event.webhook_id == "m1"
    assert task.task_id == "815336423632572487" and task.kind == "video-extend"
    assert task.task_status is OK and task.raw_status == "succeeded"
    assert (task.created_at, task.updated_at) == (1781080778802, 1781080794151)
    assert task.external_task_id == "order-7"
    assert task.video is not None
    assert (task.video.id, task.video.url, task.video.duration) == ("v9", "https://x/v9.mp4", 10.1)
    assert [i.url for i in task.task_result.images] == ["https://x/i.png"]
    assert task.final_unit_deduction == "2.5" and task.units_deducted == 2.5
    assert event.payload["outputs"][2]["type"] == "audio"  # kept, though Task has no place for it


def test_a_failed_new_standard_callback_keeps_its_reason() -> None:
    body = b'{"id":"1","status":"failed","message":"Image pixel is invalid","outputs":null}'
    task = parse_callback(body).task
    assert task.task_status is FAIL and task.task_status_msg == "Image pixel is invalid"
    assert task.videos == () and task.final_unit_deduction is None


@pytest.mark.parametrize(
    ("body", "status", "raw"),
    [
        (b'{"id":"1","status":"succeeded"}', OK, "succeeded"),
        (b'{"id":"1","status":"SUCCEEDED"}', OK, "SUCCEEDED"),
        (b'{"id":"1","status":"queued"}', TaskStatus.UNKNOWN, "queued"),
        (b'{"id":"1"}', TaskStatus.UNKNOWN, ""),
        (b'{"task_id":"1","task_status":"succeed"}', OK, "succeed"),
        (b'{"task_id":"1","task_status":"paused"}', TaskStatus.UNKNOWN, "paused"),
    ],
)
def test_statuses(body: bytes, status: TaskStatus, raw: str) -> None:
    task = parse_callback(body).task
    assert task.task_status is status and task.raw_status == raw


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not valid JSON"),
        (b"not json", "not valid JSON"),
        (b'{"task_id": "1", "task_status": "succ', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b"null", "not an object"),
        (b"{}", "neither a legacy task object"),
        (b'{"status": "succeeded"}', "neither a legacy task object"),
        (b'{"task_id": "1"}', "task_status"),
        (b'{"task_id": "", "task_status": "succeed"}', "empty task_id"),
        (b'{"task_id": 1.5, "task_status": "succeed"}', "task_id"),
        (b'{"id": ""}', "no usable 'id'"),
        (b'{"id": true}', "no usable 'id'"),
        (b'{"id": "1", "outputs": {"type": "video"}}', "'outputs' is not a list"),
        (b'{"id": "1", "outputs": ["video"]}', "outputs[0] is not an object"),
        (b'{"id": "1", "outputs": [{"type": "video", "url": 5}]}', "new-standard callback"),
        (b'{"id": "1", "create_time": "noon"}', "new-standard callback"),
    ],
)
def test_garbage_is_a_response_format_error(body: bytes, says: str) -> None:
    with pytest.raises(ResponseFormatError, match=re.escape(says)):
        parse_callback(body)


# -- repeats ----------------------------------------------------------------------------------


async def test_repeats_are_dropped_by_webhook_id_and_by_task_and_status() -> None:
    clock = FakeClock()
    receiver = CallbackReceiver(secret=SECRET, clock=clock)
    body = legacy_body(status="processing")
    first = await receiver.receive(signed(body, clock.time(), "m1"), body)
    assert first is not None
    assert await receiver.receive(signed(body, clock.time(), "m1"), body) is None  # same id
    assert await receiver.receive(signed(body, clock.time(), "m2"), body) is None  # same status
    done = legacy_body(status="succeed")
    assert await receiver.receive(signed(done, clock.time(), "m1"), done) is None  # same id
    assert await receiver.receive(signed(done, clock.time(), "m3"), done) is not None
    other = legacy_body(task_id="2", status="processing")
    assert await receiver.receive(signed(other, clock.time(), "m4"), other) is not None
    assert (receiver.accepted, receiver.duplicates, receiver.refused) == (3, 3, 0)


async def test_unsigned_repeats_are_dropped_by_task_and_status() -> None:
    receiver = CallbackReceiver()
    body = legacy_body()
    assert await receiver.receive({}, body) is not None
    assert await receiver.receive({}, body) is None
    assert await receiver.receive({"webhook-id": "fresh"}, body) is None


async def test_memory_of_repeats_is_bounded() -> None:
    receiver = CallbackReceiver(remember=3)
    bodies = [legacy_body(task_id=str(i)) for i in range(4)]
    for body in bodies:
        assert await receiver.receive({}, body) is not None
    # task 0 was forgotten to make room for task 3; tasks 1..3 are still remembered
    assert await receiver.receive({}, bodies[0]) is not None
    assert await receiver.receive({}, bodies[3]) is None
    assert len(receiver._statuses) == 3


async def test_on_event_may_be_async_and_a_failure_lets_the_retry_through() -> None:
    seen: list[CallbackEvent] = []
    calls = itertools.count()

    async def on_event(event: CallbackEvent) -> None:
        await asyncio.sleep(0)
        if next(calls) == 0:
            raise RuntimeError("database down")
        seen.append(event)

    receiver = CallbackReceiver(on_event=on_event)
    body = legacy_body()
    with pytest.raises(RuntimeError, match="database down"):
        await receiver.receive({"webhook-id": "m1"}, body)
    event = await receiver.receive({"webhook-id": "m1"}, body)  # the sender's retry
    assert event is not None and seen == [event]
    assert await receiver.receive({"webhook-id": "m1"}, body) is None


async def test_on_event_may_be_a_plain_function() -> None:
    seen: list[str] = []
    receiver = CallbackReceiver(on_event=lambda event: seen.append(event.task_id))
    await receiver.receive({}, legacy_body(task_id="42"))
    assert seen == ["42"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown task kind"):
        CallbackReceiver(kind="video-extension")
    with pytest.raises(ValueError, match="tolerance"):
        CallbackReceiver(tolerance=0)
    with pytest.raises(ValueError, match="remember"):
        CallbackReceiver(remember=0)


# -- end to end: emulator -> callbacks -> aiohttp handler -> scheduler -> watch ---------------


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve aiohttp handlers on 127.0.0.1 (any free port); all stopped at the end."""
    runners: list[web.AppRunner] = []

    async def start(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application()
        app.router.add_post("/kling-callback", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}/kling-callback"

    yield start
    for runner in runners:
        await runner.cleanup()


async def quiesce(emu: KlingEmulator, *clients: KlingClient) -> None:
    """Deliver due callbacks and let every poll they or the clock started finish."""
    for _ in range(20):
        before = (len(emu.callbacks), *(c.scheduler.polls_sent for c in clients))
        await emu.flush_callbacks()
        for _ in range(5):
            await asyncio.sleep(0)
        for client in clients:
            await settle(client)
        if before == (len(emu.callbacks), *(c.scheduler.polls_sent for c in clients)):
            return
    raise AssertionError("callbacks and polls never settled")


async def drive(
    clock: FakeClock,
    emu: KlingEmulator,
    clients: tuple[KlingClient, ...],
    done: Callable[[], bool],
    *,
    step: float = 1.0,
    limit: float = 2_000.0,
    on_step: Callable[[], None] | None = None,
) -> None:
    start = clock.monotonic()
    await quiesce(emu, *clients)
    while not done():
        assert clock.monotonic() - start <= limit, "not done in time"
        await clock.advance(step)
        await quiesce(emu, *clients)
        if on_step is not None:
            on_step()


async def collect(watch: Any, sink: list[StatusChange]) -> None:
    async for change in watch:
        sink.append(change)


def histories(changes: list[StatusChange]) -> dict[str, list[StatusChange]]:
    out: dict[str, list[StatusChange]] = {}
    for change in changes:
        out.setdefault(change.task_id, []).append(change)
    return out


def assert_once_each(changes: list[StatusChange], expected: list[TaskStatus]) -> None:
    history = [c.current for c in changes]
    assert history == expected, history
    for before, after in itertools.pairwise(changes):
        assert after.previous == before.current


async def test_signed_callbacks_yield_each_transition_once_with_far_fewer_polls(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, serve: Serve
) -> None:
    emu = await make_emulator(webhook_secret=SECRET, durations=Durations(queued=7, running=313))
    kling = make_client(emu)  # watches tasks that have a callback_url
    plain = make_client(emu)  # watches the same kind of tasks without one
    receiver = CallbackReceiver(secret=SECRET, client=kling)
    url = await serve(aiohttp_handler(receiver))
    seed = emu.add_video()
    n = 10
    with_cb = [await kling.extend_video(seed.video_id, callback_url=url) for _ in range(n)]
    without = [await plain.extend_video(seed.video_id) for _ in range(n)]
    await quiesce(emu)  # the `submitted` callbacks arrive before anyone watches
    changes: list[StatusChange] = []
    plain_changes: list[StatusChange] = []
    consumers = [
        asyncio.ensure_future(collect(kling.watch(with_cb), changes)),
        asyncio.ensure_future(collect(plain.watch(without), plain_changes)),
    ]
    await drive(clock, emu, (kling, plain), lambda: all(c.done() for c in consumers))
    await asyncio.gather(*consumers)

    for task_id, history in histories(changes).items():
        assert_once_each(history, [S, P, OK])
        ended_at = emu.tasks[task_id].ends_at
        assert 0 <= history[-1].at - ended_at < 1.0  # yielded on the callback, not a later poll
        assert history[-1].task.video is not None
    assert len(histories(changes)) == n
    for history in histories(plain_changes).values():
        assert_once_each(history, [S, P, OK])
    assert len(emu.callbacks) == 3 * n
    assert {r.http_status for r in emu.callbacks} == {200}
    assert receiver.accepted == 3 * n and receiver.refused == 0
    # covered tasks are polled on the long safety interval only: 5 s (first poll), then every
    # 120 s after `processing` arrived; the others about 20 times each
    assert kling.scheduler.polls_sent <= 3 * n
    assert plain.scheduler.polls_sent >= 5 * kling.scheduler.polls_sent


async def test_unsigned_callbacks_are_each_confirmed_by_one_get(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, serve: Serve
) -> None:
    emu = await make_emulator(durations=Durations(queued=7, running=313))
    kling = make_client(emu)
    receiver = CallbackReceiver(client=kling)
    url = await serve(aiohttp_handler(receiver))
    seed = emu.add_video()
    n = 5
    tasks = [await kling.extend_video(seed.video_id, callback_url=url) for _ in range(n)]
    await quiesce(emu)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch(tasks), changes))
    # (clock offset from creation, polls sent, callbacks delivered, changes yielded) per step
    trace: list[tuple[float, int, int, int]] = []

    def record() -> None:
        trace.append(
            (round(clock.monotonic()), kling.scheduler.polls_sent, len(emu.callbacks), len(changes))
        )

    await drive(clock, emu, (kling,), consumer.done, on_step=record)
    await consumer
    by_time = {t: (polls, cbs, seen) for t, polls, cbs, seen in trace}
    before = {t: by_time[t - 1] for t in by_time if t - 1 in by_time}
    assert {7, 320} <= before.keys()
    for t, (polls, cbs, seen) in by_time.items():
        if t not in before:
            continue
        new_polls = polls - before[t][0]
        new_callbacks = cbs - before[t][1]
        if t in (7, 320):  # `processing`, then `succeed`: n callbacks, each confirmed by a GET
            assert new_callbacks == n and new_polls == n, (t, new_callbacks, new_polls)
            assert seen - before[t][2] == n
        else:
            assert new_callbacks == 0
    for history in histories(changes).values():
        assert_once_each(history, [S, P, OK])
    assert receiver.accepted == 3 * n  # `submitted` too, though nobody was watching yet
    assert kling.scheduler.polls_sent <= 5 * n


async def test_a_forged_unsigned_success_is_checked_and_not_believed(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, serve: Serve
) -> None:
    emu = await make_emulator(durations=Durations(queued=2, running=100))
    kling = make_client(emu)
    url = await serve(aiohttp_handler(CallbackReceiver(client=kling)))
    task = await kling.extend_video(emu.add_video().video_id)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task]), changes))
    await drive(clock, emu, (kling,), lambda: [c.current for c in changes] == [S, P])
    assert emu.tasks[task.task_id].phase_at(emu.clock.time()).status == "processing"

    polls = kling.scheduler.polls_sent
    forged = legacy_body(task_id=task.task_id, status="succeed")
    async with aiohttp.ClientSession() as http:
        for _ in range(3):  # the repeats are dropped: one confirming GET in all
            async with http.post(url, data=forged) as resp:
                assert resp.status == 200 and await resp.json() == {"ok": True}
    await quiesce(emu, kling)
    assert kling.scheduler.polls_sent == polls + 1
    assert [c.current for c in changes] == [S, P]  # the GET said `processing`: nothing new

    await drive(clock, emu, (kling,), consumer.done)
    await consumer
    assert_once_each(changes, [S, P, OK])
    assert changes[-1].at >= emu.tasks[task.task_id].ends_at


async def test_a_callback_with_a_bad_signature_is_refused_and_changes_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, serve: Serve
) -> None:
    emu = await make_emulator(webhook_secret=SECRET, durations=Durations(queued=2, running=100))
    kling = make_client(emu)
    receiver = CallbackReceiver(secret=SECRET, client=kling)
    url = await serve(aiohttp_handler(receiver))
    task = await kling.extend_video(emu.add_video().video_id)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task]), changes))
    await drive(clock, emu, (kling,), lambda: [c.current for c in changes] == [S, P])

    polls = kling.scheduler.polls_sent
    forged = legacy_body(task_id=task.task_id, status="succeed")
    now = clock.time()
    attempts = [
        signed(forged, now, secret=VECTOR_SECRET),  # signed with another secret
        {},  # unsigned
        signed(forged, now - 3600),  # a genuine-looking signature, an hour old (a replay)
        {**signed(forged, now), "webhook-id": "msg_other"},  # signature for another message
    ]
    async with aiohttp.ClientSession() as http:
        for headers in attempts:
            async with http.post(url, data=forged, headers=headers) as resp:
                assert resp.status == 401
                assert (await resp.json())["ok"] is False
                assert SECRET not in await resp.text()
        async with http.post(url, data=b"{not json", headers=signed(b"{not json", now)) as resp:
            assert resp.status == 400
    await quiesce(emu, kling)
    assert kling.scheduler.polls_sent == polls  # not even a confirming GET
    assert [c.current for c in changes] == [S, P]
    assert receiver.refused == 5 and receiver.accepted == 0

    await drive(clock, emu, (kling,), consumer.done)
    await consumer
    assert_once_each(changes, [S, P, OK])
    assert changes[-1].at >= emu.tasks[task.task_id].ends_at


async def test_on_event_failure_answers_500(serve: Serve) -> None:
    def on_event(event: CallbackEvent) -> None:
        raise RuntimeError("boom")

    url = await serve(aiohttp_handler(CallbackReceiver(on_event=on_event)))
    async with aiohttp.ClientSession() as http, http.post(url, data=legacy_body()) as resp:
        assert resp.status == 500 and (await resp.json())["ok"] is False


async def test_a_stale_poll_answer_does_not_undo_a_verified_callback(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, serve: Serve
) -> None:
    emu = await make_emulator(webhook_secret=SECRET, durations=Durations(queued=60, running=100))
    kling = make_client(emu)
    receiver = CallbackReceiver(secret=SECRET, client=kling)
    url = await serve(aiohttp_handler(receiver))
    task = await kling.extend_video(emu.add_video().video_id)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task]), changes))
    await quiesce(emu, kling)
    emu.fault(Fault.SLOW, route="get", delay=0.3)  # the next poll's answer (`submitted`) lags
    await clock.advance(5)  # the first poll starts
    for _ in range(5):
        await asyncio.sleep(0)
    assert kling.scheduler.in_flight == 1
    processing = legacy_body(task_id=task.task_id, status="processing")
    async with aiohttp.ClientSession() as http:  # a verified `processing` lands meanwhile
        headers = signed(processing, clock.time())
        async with http.post(url, data=processing, headers=headers) as resp:
            assert resp.status == 200
    await settle(kling)
    await asyncio.sleep(0)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert [c.current for c in changes] == [S, P]


async def test_an_unverified_callback_during_a_poll_is_still_confirmed_at_once(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, serve: Serve
) -> None:
    emu = await make_emulator(durations=Durations(queued=60, running=100))
    kling = make_client(emu)
    url = await serve(aiohttp_handler(CallbackReceiver(client=kling)))
    task = await kling.extend_video(emu.add_video().video_id)
    changes: list[StatusChange] = []
    consumer = asyncio.ensure_future(collect(kling.watch([task]), changes))
    await quiesce(emu, kling)
    emu.fault(Fault.SLOW, route="get", delay=0.3)  # the first poll's answer (`submitted`) lags
    await clock.advance(5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert kling.scheduler.in_flight == 1
    await clock.advance(55)  # now 60 s: `processing` has begun; the slow poll still answers S
    processing = json.dumps(emu.task_json(task.task_id)).encode()
    async with aiohttp.ClientSession() as http, http.post(url, data=processing) as resp:
        assert resp.status == 200
    await quiesce(emu, kling)
    try:
        # the claim deserves its own GET, now, rather than waiting for the cadence
        assert [c.current for c in changes] == [S, P]
    finally:
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer


# -- the ASGI app -----------------------------------------------------------------------------


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
        await clock.advance(3)  # `processing` began at 2 s; the first poll is not due before 5 s
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
