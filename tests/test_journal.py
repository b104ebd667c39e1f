"""The SQLite journal: group commit, crash safety, refusing foreign files (what every storage
does alike is in test_journal_contract.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kling_async import FakeClock
from kling_async.journal import (
    OUTCOMES,
    SCHEMA_VERSION,
    Intent,
    Journal,
    JournalClosedError,
    JournalError,
    JournalFormatError,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "batch.sqlite"


@pytest.fixture
async def journal(path: Path) -> AsyncIterator[Journal]:
    async with await Journal.open(path) as j:
        yield j


def intents(*keys: str) -> list[Intent]:
    return [Intent(k, {"video_id": f"v-{k}", "external_task_id": f"ext-{k}"}) for k in keys]


# Sync helpers: file work outside the async tests proper.
def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


# --- errors reach the caller (the contract's test covers both storages) -------------------------


async def test_failing_calls_share_one_commit_with_the_rest(journal: Journal) -> None:
    await journal.record_intents(intents("a", "b"))
    results = await asyncio.gather(
        journal.record_created("a", "t-a", 1),
        journal.record_created("nope", "t-x", 1),
        journal.record_status("ghost", "processing", None),
        return_exceptions=True,
    )
    assert results[0] is None and isinstance(results[1], JournalError)
    assert journal.commits == 2  # the intents, then one transaction for all three calls


async def test_arguments_are_checked_before_anything_is_queued(journal: Journal) -> None:
    with pytest.raises(ValueError, match="outcome must be one of"):
        await journal.record_outcome("a", "succeeded", {})
    with pytest.raises(ValueError, match="task_id"):
        await journal.record_created("a", "", 1)
    with pytest.raises(ValueError, match="key"):
        Intent("", {})
    with pytest.raises(TypeError, match="request"):
        Intent("k", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert {"succeed", "failed", "rejected", "timed_out", "ambiguous", "not_sent"} == OUTCOMES
    assert journal.commits == 0


async def test_a_failed_transaction_fails_every_caller_and_the_journal_goes_on(
    path: Path,
) -> None:
    async with await Journal.open(path, busy_timeout=0.05) as j:
        await j.record_intents(intents("a"))
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            results = await asyncio.gather(
                j.record_created("a", "t", 1), j.record_status("a", "x", None),
                return_exceptions=True,
            )  # fmt: skip
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert all(isinstance(r, JournalError) for r in results)
        assert "nothing of it was written" in str(results[0])
        assert isinstance(results[0], JournalError)
        assert isinstance(results[0].__cause__, sqlite3.OperationalError)
        await j.record_created("a", "t", 1)
        assert (await j.entries())[0].task_id == "t"


class FlakyClock(FakeClock):
    """A clock whose next reading fails."""

    broken = False

    def time(self) -> float:
        if self.broken:
            self.broken = False
            raise OSError("clock unavailable")
        return super().time()


async def test_an_unexpected_error_in_the_writer_fails_the_call_not_the_thread(
    path: Path,
) -> None:
    clock = FlakyClock()
    async with await Journal.open(path, clock=clock) as j:
        clock.broken = True
        with pytest.raises(JournalError, match="clock unavailable") as caught:
            await j.record_intents(intents("a"))
        assert isinstance(caught.value.__cause__, OSError)
        await j.record_intents(intents("b"))
        assert [e.key for e in await j.entries()] == ["b"]


# --- group commit ------------------------------------------------------------------------------


async def test_a_thousand_concurrent_writes_share_a_few_commits(journal: Journal) -> None:
    n = 1000
    await journal.record_intents(intents(*(f"k{i}" for i in range(n))))
    before = journal.commits
    await asyncio.gather(*(journal.record_created(f"k{i}", f"t{i}", i) for i in range(n)))
    assert journal.commits - before <= 5
    entries = await journal.entries()
    assert [(e.task_id, e.created_at_ms) for e in entries] == [(f"t{i}", i) for i in range(n)]


async def test_independent_writers_are_batched_while_the_writer_is_busy(journal: Journal) -> None:
    workers, rounds = 100, 10
    await journal.record_intents(intents(*(f"w{w}" for w in range(workers))))
    before = journal.commits

    async def worker(w: int) -> None:
        for r in range(rounds):
            await journal.record_status(f"w{w}", f"s{r}", str(r).encode())

    await asyncio.gather(*(worker(w) for w in range(workers)))
    assert journal.writes == 1 + workers * rounds
    assert journal.commits - before <= 3 * rounds  # not one per call
    assert {(e.status, e.task_json) for e in await journal.entries()} == {("s9", b"9")}


# --- crash safety ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from kling_async.journal import Intent, Journal

    async def main(path):
        journal = await Journal.open(path)
        print("open", flush=True)
        round = 0
        while True:
            keys = [f"k{round}-{n}" for n in range(4)]
            await journal.record_intents([Intent(k, {"video_id": "v" + k}) for k in keys])
            print("intents", *keys, flush=True)

            async def create(key):
                await journal.record_created(key, "t-" + key, round)
                print("created", key, flush=True)

            await asyncio.gather(*(create(k) for k in keys))
            round += 1

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.parametrize("kill_after", [25, 600])
async def test_every_reported_write_survives_sigkill(
    tmp_path: Path, path: Path, kill_after: int
) -> None:
    script = write(tmp_path / "child.py", CHILD.encode())
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", str(script), str(path),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": pythonpath},
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while len(lines) < kill_after:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, "the child died on its own"
            lines.append(line.decode())
        assert exists(f"{path}-wal")  # killed with writes in the WAL, not checkpointed
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        rest = await proc.stdout.read()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    lines += rest.decode().splitlines(keepends=True)
    done = [line.split() for line in lines if line.endswith("\n")]

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()
    async with await Journal.open(path) as j:  # recovers the WAL
        entries = {e.key: e for e in await j.entries()}
        # The file takes new writes after the crash.
        await j.record_intents(intents("after-crash"))
        assert (await j.entries())[-1].key == "after-crash"
    reported_intents = [k for words in done if words[0] == "intents" for k in words[1:]]
    reported_created = [words[1] for words in done if words[0] == "created"]
    assert len(reported_intents) >= 4
    for key in reported_intents:
        assert entries[key].request == {"video_id": "v" + key}
    for key in reported_created:
        assert entries[key].task_id == "t-" + key
    assert list(entries)[: len(reported_intents)] == reported_intents


# --- files that are not ours -------------------------------------------------------------------


async def test_a_file_that_is_not_sqlite_is_refused_untouched(path: Path) -> None:
    write(path, b"video_id,prompt\nabc,a cat\n" * 100)
    before = digest(path)
    with pytest.raises(JournalFormatError, match="not an SQLite database"):
        await Journal.open(path)
    with pytest.raises(JournalFormatError, match="not an SQLite database"):
        Journal.read(path)
    assert digest(path) == before


async def test_another_applications_sqlite_file_is_refused_untouched(path: Path) -> None:
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE entry (key TEXT)")
    other.close()
    before = digest(path)
    with pytest.raises(JournalFormatError, match="not a kling_async journal"):
        await Journal.open(path)
    with pytest.raises(JournalFormatError, match="not a kling_async journal"):
        Journal.read(path)
    assert digest(path) == before
    assert not exists(f"{path}-wal")


async def test_a_journal_from_a_newer_version_is_refused(path: Path) -> None:
    await (await Journal.open(path)).close()
    with sqlite3.connect(path) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(JournalFormatError, match="newer kling_async"):
        await Journal.open(path)
    with pytest.raises(JournalFormatError, match="newer kling_async"):
        Journal.read(path)


async def test_an_empty_file_becomes_a_journal_but_cannot_be_read_as_one(path: Path) -> None:
    write(path, b"")
    with pytest.raises(JournalFormatError, match="empty"):
        Journal.read(path)
    async with await Journal.open(path) as j:
        await j.record_intents(intents("a"))
    assert [e.key for e in Journal.read(path)] == ["a"]
    with pytest.raises(FileNotFoundError):
        Journal.read(path.with_name("missing.sqlite"))
    assert not exists(path.with_name("missing.sqlite"))


# --- lifecycle ---------------------------------------------------------------------------------


async def test_use_after_close_raises_and_close_is_idempotent(path: Path) -> None:
    j = await Journal.open(path)
    await j.record_intents(intents("a"))
    await asyncio.gather(j.close(), j.close())
    await j.close()
    assert j.closed
    assert not j._writer.thread.is_alive()
    with pytest.raises(JournalClosedError, match="closed"):
        await j.record_intents(intents("b"))
    with pytest.raises(JournalClosedError):
        await j.record_intents([])
    with pytest.raises(JournalClosedError):
        await j.entries()
    with pytest.raises(JournalClosedError):
        await j.record_created("a", "t", 1)
    assert "closed" in repr(j)


async def test_close_flushes_writes_not_yet_handed_to_the_writer(path: Path) -> None:
    j = await Journal.open(path)
    await j.record_intents(intents("a"))
    pending = [asyncio.create_task(j.record_created("a", "t", 1))]
    pending += [asyncio.create_task(j.record_intents(intents(f"n{i}"))) for i in range(50)]
    await asyncio.sleep(0)  # the calls are queued on the journal, not yet on the writer
    await j.close()
    await asyncio.gather(*pending)
    entries = Journal.read(path)
    assert entries[0].task_id == "t"
    assert len(entries) == 51


async def test_read_sees_committed_writes_while_the_journal_is_open(journal: Journal) -> None:
    await journal.record_intents(intents("a", "b"))
    await journal.record_created("a", "t", 1)
    seen = Journal.read(journal.path)
    assert [(e.key, e.state) for e in seen] == [("a", "created"), ("b", "intent")]
    await journal.record_outcome("a", "succeed", {"video_id": "c"})  # the reader held no lock
    assert Journal.read(journal.path)[0].state == "final"


async def test_an_unclosed_journal_warns_and_stops_its_thread(path: Path) -> None:
    j = await Journal.open(path)
    thread = j._writer.thread
    with pytest.warns(ResourceWarning, match="unclosed journal"):
        del j  # the last reference: collected at once
    thread.join(5)
    assert not thread.is_alive()


# --- the event loop is never blocked -----------------------------------------------------------


class Ticker:
    """Counts the event loop's turns: a blocked loop shows as a long gap."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def run(self) -> None:
        while True:
            self.times.append(time.perf_counter())
            await asyncio.sleep(0.002)

    @property
    def max_gap(self) -> float:
        return max(b - a for a, b in zip(self.times, self.times[1:], strict=False))


async def test_the_loop_runs_while_a_write_waits_for_the_disk(journal: Journal) -> None:
    await journal.record_intents(intents("a"))
    other = sqlite3.connect(journal.path, isolation_level=None)
    ticker = Ticker()
    ticking = asyncio.create_task(ticker.run())
    try:
        other.execute("BEGIN IMMEDIATE")  # the writer must wait for this lock
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        start = time.perf_counter()
        await journal.record_created("a", "t", 1)
        waited = time.perf_counter() - start
    finally:
        ticking.cancel()
        other.close()
    assert waited >= 0.25
    assert len(ticker.times) >= 30
    assert ticker.max_gap < 0.1


async def test_the_loop_runs_during_a_large_batch(journal: Journal) -> None:
    batch = [Intent(f"k{i}", {"video_id": f"v{i}", "prompt": "p" * 500}) for i in range(10_000)]
    ticker = Ticker()
    ticking = asyncio.create_task(ticker.run())
    try:
        await asyncio.sleep(0)
        start = time.perf_counter()
        await journal.record_intents(batch)
        entries = await journal.entries()
        took = time.perf_counter() - start
    finally:
        ticking.cancel()
    assert len(entries) == 10_000
    assert ticker.max_gap < max(0.1, took / 3)
    assert len(ticker.times) >= 5


async def test_a_second_process_cannot_open_a_journal_in_use(tmp_path: Path) -> None:
    """Two batches on one journal would re-send each other's in-flight intents."""
    path = tmp_path / "shared.sqlite"
    async with await Journal.open(path):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "from kling_async.journal import Journal, JournalError\n"
            "async def main():\n"
            "    try:\n"
            "        await Journal.open(sys.argv[1])\n"
            "    except JournalError as e:\n"
            "        print('refused:', e)\n"
            "asyncio.run(main())\n",
            str(path),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await child.communicate()
        assert b"refused:" in out and b"in use by another process" in out
        assert len(Journal.read(path)) == 0  # reading is still allowed
    async with await Journal.open(path):  # released on close
        pass
