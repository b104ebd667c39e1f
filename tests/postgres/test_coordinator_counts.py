"""What the shared count says when it matters: the limit learned after a 1303 (the creates
other processes had in flight when it was counted ran: the next count proves them), one row
per task (a task taken over from a dead process is not counted twice), and the coordinator's
options given in the DSN.

Real PostgreSQL (``pg_dsn``), the emulator on a scaled clock, two clients in one loop."""

from __future__ import annotations

import asyncio
import math

import asyncpg
import pytest

from kling_async import (
    ConfigurationError,
    KlingClient,
    ScaledClock,
    VideoExtendRequest,
)
from kling_async.postgres.coordinator import PostgresCoordinator
from kling_async.slots import SlotLimit
from kling_async.testing import Durations, KlingEmulator

SCALE = 200.0


async def test_a_count_after_a_1303_learns_the_creates_others_had_in_flight(
    pg_dsn: str,
) -> None:
    clock = ScaledClock(SCALE)
    async with KlingEmulator(clock=clock, slot_limit=3, durations=Durations(1, 5_000)) as emu:
        request = VideoExtendRequest(video_id=emu.add_video().video_id, prompt="p")
        a = KlingClient(**emu.client_kwargs(), clock=clock, coordinator=pg_dsn)
        b = KlingClient(**emu.client_kwargs(), clock=clock, coordinator=pg_dsn)
        async with a, b:
            await a.create(request)
            await b.create(request)
            in_flight = await b.gate.acquire()  # b's create, not answered yet...
            slot = await a.gate.acquire()  # ...when a counts (2 running)
            in_flight.release()
            await b.create(request)  # ...and answered now: the account is full (3)
            # Refused (learning 2: what a counted), back in line: its next count sees 3 running,
            # which the account has.
            create = asyncio.ensure_future(a._creator.create(request, slot=slot))
            for _ in range(200):
                if a.gate.refusals and a.gate.learned == 3:
                    break
                await asyncio.sleep(0.01)
            create.cancel()
            await asyncio.gather(create, return_exceptions=True)
            assert a.gate.refusals == 1
            assert a.gate.learned == 3
            assert emu.slots_in_use == 3


async def test_a_task_taken_over_from_a_dead_process_holds_one_row(pg_dsn: str) -> None:
    clock = ScaledClock(SCALE)
    async with KlingEmulator(clock=clock, slot_limit=5, durations=Durations(1, 2_000)) as emu:
        request = VideoExtendRequest(video_id=emu.add_video().video_id, prompt="p")
        dead = PostgresCoordinator(pg_dsn, lease=600.0)
        async with KlingClient(**emu.client_kwargs(), clock=clock, coordinator=dead) as first:
            task = await first.create(request)
            await dead._ops.join()
            dead._tasks[0].cancel()  # the heartbeat stops: it "died" (its rows stay, unrenewed)
            dead.closed = True  # aclose() leaves its rows as a kill -9 would
        async with KlingClient(**emu.client_kwargs(), clock=clock, coordinator=pg_dsn) as heir:
            heir.gate.hold(task)  # a batch resumed by another worker holds its running task
            await heir.coordinator._ops.join()  # type: ignore[attr-defined]
            conn = await asyncpg.connect(pg_dsn)
            try:
                rows = await conn.fetch("SELECT holder FROM kling_slot_lease WHERE task_id = $1",
                                        task.task_id)  # fmt: skip
            finally:
                await conn.close()
            assert [r["holder"] for r in rows] == [heir.coordinator.holder]  # type: ignore[attr-defined]
        await dead._db.close()  # type: ignore[union-attr]


async def test_the_dsn_sets_the_lease_and_is_given_to_the_driver_without_it(pg_dsn: str) -> None:
    sep = "&" if "?" in pg_dsn else "?"
    coordinator = PostgresCoordinator(f"{pg_dsn}{sep}kling_lease=2.5&kling_recheck=0.25")
    assert (coordinator.lease, coordinator.recheck) == (2.5, 0.25)
    assert coordinator.dsn == pg_dsn
    clock = ScaledClock(SCALE)
    async with KlingEmulator(clock=clock, slot_limit=5, durations=Durations(1, 2_000)) as emu:
        request = VideoExtendRequest(video_id=emu.add_video().video_id, prompt="p")
        dsn = f"{pg_dsn}{sep}kling_lease=2.5"
        async with KlingClient(**emu.client_kwargs(), clock=clock, coordinator=dsn) as kling:
            await kling.create(request)  # connected: the driver never saw kling_lease
            conn = await asyncpg.connect(pg_dsn)
            try:
                left = await conn.fetchval(
                    "SELECT extract(epoch FROM max(expires_at) - now()) FROM kling_slot_lease"
                )
            finally:
                await conn.close()
            assert 0 < float(left) <= 2.5


def test_a_keyword_wins_over_the_dsn_and_bad_options_are_refused() -> None:
    dsn = "postgresql://u@db.invalid/kling?sslmode=disable&kling_lease=5"
    coordinator = PostgresCoordinator(dsn, lease=9.0)
    assert coordinator.lease == 9.0
    assert coordinator.dsn == "postgresql://u@db.invalid/kling?sslmode=disable"
    assert PostgresCoordinator("postgresql://u@db.invalid/kling").lease == 30.0
    with pytest.raises(ConfigurationError, match="kling_leese"):
        PostgresCoordinator("postgresql://u@db.invalid/k?kling_leese=5")
    for bad in ("soon", "inf", "nan", ""):
        with pytest.raises(ConfigurationError, match="seconds"):
            PostgresCoordinator(f"postgresql://u@db.invalid/k?kling_lease={bad}")
    with pytest.raises(ConfigurationError, match="lease must be > 0"):
        PostgresCoordinator("postgresql://u@db.invalid/k?kling_lease=0")


def test_a_limit_lowered_by_another_process_slows_this_ones_probes() -> None:
    def ends_to_grow(policy: SlotLimit) -> int:
        start, ends = math.floor(policy.limit), 0
        while math.floor(policy.limit) == start:
            policy.ended(1.0)
            ends += 1
        return ends

    policy = SlotLimit()
    policy.adopt(20)  # another process's slow start ended at 20
    assert ends_to_grow(policy) == 20  # probes 21 after 20 ends...
    policy.adopt(20)  # ...refused elsewhere: the account's limit went back to 20
    assert ends_to_grow(policy) == 40  # the next probe waits twice as long
    policy.adopt(20)
    assert ends_to_grow(policy) == 80
