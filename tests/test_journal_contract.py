"""What every journal storage does alike: run against SQLite and against a real PostgreSQL.

A test takes ``backend`` and opens the journal with ``backend.open()`` (again and again: the
same file, or the same batch of the same database, as a re-run would) and reads it back from
outside with ``backend.read()``. The PostgreSQL half skips (or fails in CI) without a server.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from kling_async import FakeClock
from kling_async.clock import Clock
from kling_async.journal import (
    OUTCOMES,
    Intent,
    Journal,
    JournalClosedError,
    JournalEntry,
    JournalError,
    SharedJournal,
)


class Backend:
    def __init__(self, name: str, where: str) -> None:
        self.name, self.where = name, where

    async def open(self, clock: Clock | None = None) -> Any:
        if self.name == "sqlite":
            return await Journal.open(self.where, clock=clock)
        return await SharedJournal.open(self.where, batch="contract", clock=clock)

    async def read(self) -> list[JournalEntry]:
        if self.name == "sqlite":
            return Journal.read(self.where)
        return await SharedJournal.read(self.where, "contract")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "batch.sqlite"))
    return Backend("postgresql", request.getfixturevalue("pg_dsn"))


def intents(*keys: str) -> list[Intent]:
    return [Intent(k, {"video_id": f"v-{k}", "external_task_id": f"ext-{k}"}) for k in keys]


async def test_every_record_kind_round_trips(backend: Backend) -> None:
    clock = FakeClock(start_time=1_000.0)
    async with await backend.open(clock) as j:
        await j.record_intents(
            [
                Intent("a", {"video_id": "v1", "prompt": "ünïcode ✓", "cfg_scale": 0.5}),
                Intent("b", {"video_id": "v2"}, sent_at=999.5),
            ]
        )
        await clock.advance(1)
        await j.record_sent("a", 1_000.5)
        await j.record_created("a", "task-1", 1_700_000_000_123)
        await j.record_status("a", "processing", b'{"task_id":"task-1"}')
        await clock.advance(1)
        await j.record_outcome("a", "succeed", {"video_id": "v9", "units": [1, 2.5, None]})
        live = await j.entries()

    a, b = live
    assert a.key == "a"
    assert a.request == {"video_id": "v1", "prompt": "ünïcode ✓", "cfg_scale": 0.5}
    assert a.sent_at == 1_000.5
    assert a.task_id == "task-1"
    assert a.created_at_ms == 1_700_000_000_123
    assert a.status == "processing"
    assert a.task_json == b'{"task_id":"task-1"}'
    assert a.outcome == "succeed"
    assert a.detail == {"video_id": "v9", "units": [1, 2.5, None]}
    assert (a.intent_at, a.updated_at) == (1_000.0, 1_002.0)
    assert a.state == "final"
    assert (b.key, b.sent_at, b.intent_at) == ("b", 999.5, 1_000.0)
    assert [b.task_id, b.status, b.task_json, b.outcome, b.detail] == [None] * 5
    assert b.state == "intent"
    assert await backend.read() == live  # what the writer saw is what is stored


async def test_state_follows_the_records(backend: Backend) -> None:
    async with await backend.open() as journal:
        await journal.record_intents(intents("k"))

        async def state() -> str:
            (entry,) = await journal.entries()
            return str(entry.state)

        assert await state() == "intent"
        await journal.record_sent("k", time.time())
        assert await state() == "intent"  # sent, answer not yet known
        await journal.record_created("k", "t1", 1)
        assert await state() == "created"
        await journal.record_status("k", "succeed", b"{}")
        assert await state() == "created"  # a status is not an outcome
        await journal.record_outcome("k", "succeed", {})
        assert await state() == "final"
        await journal.record_intents(intents("r"))  # rejected before creation: final too
        await journal.record_outcome("r", "rejected", {"code": 1301})
        assert [e.state for e in await journal.entries()] == ["final", "final"]
        await journal.record_sent("r", time.time())  # a new send clears the old outcome
        assert (await journal.entries())[1].outcome is None


async def test_entries_keep_insertion_order(backend: Backend) -> None:
    keys = ["k10", "k2", "b", "k1", "a", "zz", "0"]
    async with await backend.open() as j:
        await j.record_intents(intents(*keys[:3]))
        for k in keys[3:]:
            await j.record_intents(intents(k))
        await j.record_created("k1", "t", 1)  # updates do not reorder
        await j.record_outcome("k10", "failed", {})
        assert [e.key for e in await j.entries()] == keys
    assert [e.key for e in await backend.read()] == keys


async def test_record_intents_is_idempotent_across_runs(backend: Backend) -> None:
    async with await backend.open() as j:
        await j.record_intents(intents("a", "b"))
        await j.record_created("a", "t-a", 5)
        await j.record_outcome("b", "not_sent", {"reason": "cancelled"})
    before = await backend.read()
    async with await backend.open() as j:
        # The whole batch is recorded again, one request changed, one new: existing keys are kept.
        await j.record_intents([Intent("a", {"video_id": "changed"}), *intents("b"), *intents("c")])
        await j.record_intents([Intent("d", {"n": 1}), Intent("d", {"n": 2})])  # first wins
        after = await j.entries()
    assert after[:2] == before
    assert [e.key for e in after] == ["a", "b", "c", "d"]
    assert after[3].request == {"n": 1}
    assert after[2].state == "intent"


async def test_same_task_id_again_is_a_no_op_another_is_refused(backend: Backend) -> None:
    async with await backend.open() as journal:
        await journal.record_intents(intents("a"))
        await journal.record_created("a", "t1", 10)
        await journal.record_created("a", "t1", 10)
        with pytest.raises(JournalError, match="already has task t1"):
            await journal.record_created("a", "t2", 11)
        (entry,) = await journal.entries()
        assert (entry.task_id, entry.created_at_ms) == ("t1", 10)


async def test_lineage_pairs_parents_with_children(backend: Backend) -> None:
    async with await backend.open() as journal:
        await journal.record_intents([Intent(str(i), {"video_id": f"p{i}"}) for i in range(1, 5)])
        await journal.record_outcome("1", "succeed", {"video_id": "c1"})
        await journal.record_outcome("2", "succeed", {"video_id": "c2", "parent_video_id": "pp2"})
        await journal.record_outcome("3", "failed", {"video_id": "c3"})
        await journal.record_outcome("4", "succeed", {"reason": "no video"})
        assert await journal.lineage() == [("p1", "c1"), ("pp2", "c2")]


async def test_errors_reach_the_caller_and_spare_the_other_calls(backend: Backend) -> None:
    async with await backend.open() as journal:
        await journal.record_intents(intents("a", "b"))
        results = await asyncio.gather(
            journal.record_created("a", "t-a", 1),
            journal.record_created("nope", "t-x", 1),
            journal.record_outcome("b", "failed", {"bad": object()}),
            journal.record_outcome("b", "failed", {"bad": float("nan")}),
            journal.record_status("ghost", "processing", None),
            journal.record_sent("ghost", 1.0),
            return_exceptions=True,
        )
        assert results[0] is None
        assert isinstance(results[1], JournalError)
        assert "no intent recorded for key 'nope'" in str(results[1])
        assert isinstance(results[2], TypeError)
        assert isinstance(results[3], ValueError)
        assert isinstance(results[4], JournalError)
        assert isinstance(results[5], JournalError)
        a, b = await journal.entries()
        assert a.task_id == "t-a"
        assert b.outcome is None  # the failing calls wrote nothing


async def test_arguments_are_checked(backend: Backend) -> None:
    async with await backend.open() as journal:
        with pytest.raises(ValueError, match="outcome must be one of"):
            await journal.record_outcome("a", "succeeded", {})
        with pytest.raises(ValueError, match="task_id"):
            await journal.record_created("a", "", 1)
        assert await journal.entries() == []
    assert {"succeed", "failed", "rejected", "timed_out", "ambiguous", "not_sent"} == OUTCOMES


async def test_what_a_batch_learned_is_kept_for_the_next_run(backend: Backend) -> None:
    async with await backend.open() as j:
        assert await j.slot_limit() is None
        assert await j.durations() is None
        await j.record_slot_limit(7)
        await j.record_slot_limit(12)  # the last one learned wins
        await j.record_durations({"video-extend": {"n": 3}})
    async with await backend.open() as j:
        assert await j.slot_limit() == 12
        assert await j.durations() == {"video-extend": {"n": 3}}


async def test_use_after_close_raises_and_close_is_idempotent(backend: Backend) -> None:
    j = await backend.open()
    await j.record_intents(intents("a"))
    await asyncio.gather(j.close(), j.close())
    await j.close()
    assert j.closed
    for call in (
        j.record_intents(intents("b")),
        j.record_intents([]),
        j.entries(),
        j.record_created("a", "t", 1),
    ):
        with pytest.raises(JournalClosedError, match="closed"):
            await call
    assert "closed" in repr(j)
    assert [e.key for e in await backend.read()] == ["a"]


async def test_a_cancelled_call_still_writes(backend: Backend) -> None:
    async with await backend.open() as journal:
        await journal.record_intents(intents("a"))
        call = asyncio.ensure_future(journal.record_created("a", "t", 1))
        await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # asyncpg runs the statement to its end even when its caller is cancelled... or the
        # journal refuses nothing it already took: either way the write is there once settled.
        (entry,) = await journal.entries()
        assert entry.task_id == "t"
