"""End to end over real sockets: emulator -> callbacks -> aiohttp handler -> scheduler -> watch."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from kling_async import FakeClock, StatusChange
from kling_async.testing import Durations, Fault
from kling_async.webhooks import CallbackEvent, CallbackReceiver, aiohttp_handler

from ..conftest import MakeClient, MakeEmulator, Serve
from ..watching import first_poll_delay, settle
from .common import (
    OK,
    SECRET,
    VECTOR_SECRET,
    P,
    S,
    assert_once_each,
    collect,
    drive,
    histories,
    legacy_body,
    quiesce,
    signed,
)


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
    # 120 s after `processing` arrived; the others a dozen times each (a first round: on the
    # prior's guess, at the cold spacing)
    assert kling.scheduler.polls_sent <= 3 * n
    assert plain.scheduler.polls_sent >= 4 * max(n, kling.scheduler.polls_sent)


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
    await clock.advance(first_poll_delay(kling))  # the first poll starts
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
    first = first_poll_delay(kling)
    await clock.advance(first)
    for _ in range(5):
        await asyncio.sleep(0)
    assert kling.scheduler.in_flight == 1
    await clock.advance(60 - first)  # now 60 s: `processing` has begun; the poll still answers S
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


async def test_the_aiohttp_handler_passes_the_query_string_on(serve: Serve) -> None:
    events: list[CallbackEvent] = []
    receiver = CallbackReceiver(on_event=events.append)
    url = await serve(aiohttp_handler(receiver))
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "?ka_ref=t%2B1&x=", data=legacy_body()) as r,
    ):
        assert r.status == 200
    assert [e.query for e in events] == ["ka_ref=t%2B1&x="]
