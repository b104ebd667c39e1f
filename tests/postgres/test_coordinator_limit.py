"""The learned slot limit, stored per account: what one process learns from 1303 answers is
where every other process, running or new, starts from."""

from __future__ import annotations

import asyncio
import json

from kling_async import KlingClient, ScaledClock, VideoExtendRequest
from kling_async.testing import Durations, KlingEmulator

from .children import clock_of, line, spawn

SCALE = 200.0


async def _learn(kling: KlingClient, video_id: str, n: int) -> None:
    request = VideoExtendRequest(video_id=video_id, prompt="p")

    async def one() -> None:
        await kling.wait(await kling.create(request))

    await asyncio.gather(*(one() for _ in range(n)))


async def test_a_new_process_starts_from_the_limit_another_learned(pg_dsn: str) -> None:
    clock = ScaledClock(SCALE)
    async with KlingEmulator(clock=clock, slot_limit=3, durations=Durations(1, 20)) as emu:
        seed = emu.add_video()
        async with KlingClient(**emu.client_kwargs(), clock=clock, coordinator=pg_dsn) as first:
            await _learn(first, seed.video_id, 8)
            assert first.gate.learned == 3
        config = {"mode": "learned", "client": emu.client_kwargs(), "dsn": pg_dsn}
        child = await spawn({**config, **clock_of(clock)})
        assert json.loads(await line(child)) == {"learned": 3}  # no slow start, no 1303
        assert await child.wait() == 0
        # Another account (other credentials) learned nothing.
        other = {**emu.client_kwargs(), "access_key": "another-ak"}
        child = await spawn({**config, "client": other, **clock_of(clock)})
        assert json.loads(await line(child)) == {"learned": None}
        assert await child.wait() == 0


async def test_a_running_process_adopts_what_another_learned(pg_dsn: str) -> None:
    clock = ScaledClock(SCALE)
    async with KlingEmulator(clock=clock, slot_limit=3, durations=Durations(1, 20)) as emu:
        seed = emu.add_video()
        a = KlingClient(**emu.client_kwargs(), clock=clock, coordinator=pg_dsn)
        b = KlingClient(**emu.client_kwargs(), clock=clock, coordinator=pg_dsn)
        async with a, b:
            assert b.gate.learned is None  # started before anyone learned: slow start
            await _learn(a, seed.video_id, 8)
            assert a.gate.learned == 3
            refused = emu.stats.requests[("POST", "create", 429)]
            await _learn(b, seed.video_id, 6)  # its first count reads a's limit
            assert b.gate.learned == 3
            assert emu.stats.requests[("POST", "create", 429)] == refused  # b probed nothing


async def test_a_given_limit_is_not_overruled_by_a_stored_one(pg_dsn: str) -> None:
    clock = ScaledClock(SCALE)
    async with KlingEmulator(clock=clock, slot_limit=3, durations=Durations(1, 20)) as emu:
        seed = emu.add_video()
        async with KlingClient(**emu.client_kwargs(), clock=clock, coordinator=pg_dsn) as first:
            await _learn(first, seed.video_id, 8)
        emu.slot_limit = 5  # a resource pack was bought; this client is told so
        kwargs = emu.client_kwargs()
        async with KlingClient(**kwargs, clock=clock, coordinator=pg_dsn, slots=5) as told:
            await _learn(told, seed.video_id, 10)
            assert told.gate.allowed == 5
            assert emu.stats.max_slots_in_use == 5
