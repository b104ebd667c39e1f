"""The writer thread of an SQLite journal: one connection, group commits, the lock file."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from .._filelock import LockHeld, hold
from ..clock import Clock
from ._schema import connect, damaged
from .records import JournalError

__all__ = ["Job", "Op", "Writer", "resolve"]

Op = Callable[[sqlite3.Connection, float], Any]


class Job:
    """One call's work, run inside a savepoint of a shared transaction on the writer thread."""

    __slots__ = ("future", "op", "writes")

    def __init__(self, op: Op, future: asyncio.Future[Any], writes: bool) -> None:
        self.op = op
        self.future = future
        self.writes = writes


def _lock_exclusively(path: str) -> Any:
    """Hold an advisory lock on ``<path>.lock`` for as long as the returned file is open.

    Two batches writing one journal would each take the other's in-flight intents for lost
    ones and could send them again: the second is refused instead. A side file, not the
    database: closing any other descriptor of the database would drop SQLite's own locks.
    ``Journal.read`` takes no lock (reading while a batch runs is fine). Where ``fcntl`` does
    not exist (Windows) there is no lock.
    """
    if os.path.islink(path + ".lock"):
        raise JournalError(f"{path}.lock is a symbolic link; refusing to follow it")
    try:
        return hold(path + ".lock")  # 0600, and never through a planted symbolic link
    except LockHeld:
        raise JournalError(
            f"journal {path} is in use by another process (another batch still running?)"
        ) from None


class Writer:
    """Owns the connection; runs batches of jobs, one transaction per drain of the queue."""

    def __init__(self, path: str, clock: Clock | None, busy_timeout: float) -> None:
        self.path = path
        self._time: Callable[[], float] = time.time if clock is None else clock.time
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, list[Job]] | None] = (
            queue.SimpleQueue()
        )
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.commits = 0
        self.writes = 0
        #: Set if the thread died of a bug: calls then fail at once instead of waiting forever.
        self.failure: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"kling-journal {os.path.basename(path)}", daemon=True
        )

    def submit(self, loop: asyncio.AbstractEventLoop, jobs: list[Job]) -> None:
        self._queue.put((loop, jobs))

    def stop(self) -> None:
        """Ask the thread to finish what is queued, close the connection and end."""
        self._queue.put(None)

    def _run(self) -> None:
        try:
            lock = _lock_exclusively(self.path)
        except BaseException as exc:
            _settle(self.ready, exc)
            self.done.set_result(None)
            return
        try:
            conn = connect(self.path, read_only=False, busy_timeout=self._busy_timeout)
        except BaseException as exc:
            lock.close()
            _settle(self.ready, exc)
            self.done.set_result(None)
            return
        # Whoever awaited the opening may have been cancelled: the stop sentinel queued then
        # still closes the connection and the lock below.
        _settle(self.ready, None)
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                batches: list[tuple[asyncio.AbstractEventLoop, list[Job]]] = []
                # Group commit: everything queued while the last transaction ran joins this one.
                while item is not None:
                    batches.append(item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                else:
                    stopping = True
                if batches:
                    self._transact(conn, batches)
        except BaseException as exc:  # pragma: no cover - a bug here must not hang the callers
            self.failure = exc
            raise
        finally:
            try:
                conn.close()  # the last connection to close checkpoints the WAL into the file
                lock.close()
            finally:
                if self.failure is not None:  # pragma: no cover
                    self._fail_queued()
                self.done.set_result(None)

    def _transact(
        self, conn: sqlite3.Connection, batches: list[tuple[asyncio.AbstractEventLoop, list[Job]]]
    ) -> None:
        jobs = [job for _, batch in batches for job in batch]
        results: list[tuple[bool, Any]] = []
        writes = any(job.writes for job in jobs)
        try:
            now = self._time()
            if writes:
                # IMMEDIATE takes the write lock now, waiting up to busy_timeout for another
                # process, instead of failing half-way through the batch.
                conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                results.append(_run_job(conn, job, now, savepoint=writes, path=self.path))
            if writes:
                conn.execute("COMMIT")
                self.commits += 1
                self.writes += sum(
                    1 for job, (ok, _) in zip(jobs, results, strict=True) if job.writes and ok
                )
        except Exception as exc:  # BEGIN/COMMIT refused (lock timeout, disk full, I/O error...)
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            operation = "write" if writes else "read"
            message = f"journal {self.path}: {operation} failed, nothing of it was written: {exc}"
            error = JournalError(message, path=self.path, operation=operation)
            results = [(False, _chained(error, exc)) for _ in jobs]
        offset = 0
        for loop, batch in batches:
            part = results[offset : offset + len(batch)]
            offset += len(batch)
            with contextlib.suppress(RuntimeError):  # the loop was closed: nobody is waiting
                loop.call_soon_threadsafe(resolve, batch, part)

    def dead(self) -> JournalError:
        """The error for calls made after the thread died."""
        return JournalError(f"journal {self.path}: writer thread died: {self.failure!r}")

    def _fail_queued(self) -> None:  # pragma: no cover - see _run
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is None:
                continue
            loop, batch = item
            results: list[tuple[bool, Any]] = [(False, self.dead()) for _ in batch]
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(resolve, batch, results)


def _settle(future: concurrent.futures.Future[None], error: BaseException | None) -> None:
    """Resolve ``future`` unless it was cancelled (an ``open`` that was given up on)."""
    if future.set_running_or_notify_cancel():
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _run_job(
    conn: sqlite3.Connection, job: Job, now: float, *, savepoint: bool, path: str
) -> tuple[bool, Any]:
    # A savepoint per job: one failing call (unknown key, non-JSON detail...) is undone on its
    # own and reported to its caller, without costing the rest of the batch its commit.
    if savepoint:
        conn.execute("SAVEPOINT job")
    try:
        result = job.op(conn, now)
    except Exception as exc:
        if savepoint:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        if isinstance(exc, sqlite3.Error):
            return False, _chained(damaged(path, "write" if job.writes else "read", exc), exc)
        return False, exc
    if savepoint:
        conn.execute("RELEASE job")
    return True, result


def _chained(error: JournalError, cause: BaseException) -> JournalError:
    error.__cause__ = cause
    return error


def resolve(jobs: list[Job], results: list[tuple[bool, Any]]) -> None:
    """On the event loop: wake every caller of a finished transaction."""
    for job, (ok, value) in zip(jobs, results, strict=True):
        if job.future.done():  # the caller was cancelled; its write happened all the same
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
