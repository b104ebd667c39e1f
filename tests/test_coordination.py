"""The gate's side of a coordinator, in one process: what the default (in-process) coordinator
changes (nothing), and how sharing the account changes the limit's additive increase."""

from __future__ import annotations

from kling_async import FakeClock, LocalCoordinator, Task, TaskStatus
from kling_async.slots.gate import SlotGate


class _Sharing(LocalCoordinator):
    """As the in-process coordinator, but the account has ``sharers`` processes."""

    def __init__(self, sharers: int) -> None:
        self.sharers = sharers


def _task(n: int, status: TaskStatus) -> Task:
    return Task(kind="video-extend", task_id=f"t{n}", task_status=status)


async def _ends_until_the_limit_grows(gate: SlotGate) -> int:
    """Run tasks one round of ``limit`` at a time; how many ended before the limit grew."""
    start, ended, n = gate.allowed, 0, 0
    while gate.allowed == start:
        slots = [await gate.acquire() for _ in range(start)]
        for slot in slots:
            n += 1
            slot.created(_task(n, TaskStatus.PROCESSING))
        for i in range(start):
            gate.observed(_task(n - i, TaskStatus.SUCCEED))
            ended += 1
            if gate.allowed != start:
                break
        assert ended < 1000
    return ended


async def test_alone_the_limit_grows_by_one_per_limit_ends() -> None:
    gate = SlotGate(FakeClock())
    gate.resume_at(5)
    assert await _ends_until_the_limit_grows(gate) == 5
    assert gate.allowed == 6


async def test_shared_by_four_the_limit_grows_once_per_four_times_as_many_ends() -> None:
    # Each of four processes sees a quarter of the account's ends: growing a slot per `limit`
    # of its own would grow the account's limit four times as fast (and probe into 1303s).
    gate = SlotGate(FakeClock(), coordinator=_Sharing(4))
    gate.resume_at(5)
    assert await _ends_until_the_limit_grows(gate) == 20
    assert gate.allowed == 6
