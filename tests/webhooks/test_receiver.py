"""The receiver's bookkeeping: repeats dropped, bounded memory, ``on_event``, bad settings."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kling_async import FakeClock
from kling_async.webhooks import CallbackEvent, CallbackReceiver

from .common import SECRET, legacy_body, signed


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
