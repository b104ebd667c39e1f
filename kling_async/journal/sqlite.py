"""A crash-proof record of a batch of paid creates, in one SQLite file.

``extend_many(requests, journal="batch.sqlite")`` may create thousands of paid tasks. The journal
is what keeps the first invariant ("never pay twice, never lose a task") true across crashes:

* every request's *intent* is committed before its POST (:meth:`Journal.record_intents`), and the
  moment of sending too (:meth:`Journal.record_sent`), so a re-run knows which creates may already
  exist and how far back to look for them;
* the task id is committed right after the answer (:meth:`Journal.record_created`);
* status changes and the final outcome follow (:meth:`Journal.record_status`,
  :meth:`Journal.record_outcome`).

A second run with the same file resumes from :meth:`Journal.entries`: ``created`` entries are
watched, not re-created; ``intent`` entries with a ``sent_at`` are looked up before anything is
sent again; ``final`` entries are reported without any request.

How it is built, and why:

* All SQLite work happens on **one writer thread** that owns the connection, so the event loop
  never blocks on disk I/O and the connection never crosses threads.
* **Group commit.** Calls made in the same event-loop iteration are handed to the thread as one
  batch, and the thread drains every batch queued while it was busy into one transaction. A burst
  of 1,000 concurrent ``record_created`` calls therefore costs a handful of commits. Each call
  returns only once the transaction holding its write has committed.
* **WAL with ``synchronous=NORMAL``**: a commit is in the WAL file (the OS page cache) before the
  call returns, which survives ``kill -9`` and any other death of the process; see
  :func:`_configure` for why ``FULL`` is not used.
* The schema is versioned with ``PRAGMA user_version`` and marked with ``PRAGMA application_id``,
  so a foreign SQLite file or one written by a newer kling_async is refused with a clear error
  instead of being written to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from ..clock import Clock
from ._schema import connect, json_text, select_entries, unknown_key, update
from ._writer import Job, Op, Writer, resolve
from .records import (
    OUTCOMES,
    Intent,
    JournalClosedError,
    JournalEntry,
    JournalError,
    lineage_of,
)

__all__ = ["Journal"]


class Journal:
    """Append-mostly record of a batch in one SQLite file (WAL, one writer thread).

    Open with ``journal = await Journal.open(path)`` or
    ``async with await Journal.open(path) as journal:``. One event loop uses a journal; each
    ``record_*`` call returns once its write is committed (durable against the process being
    killed). Cancelling a ``record_*`` call does not withdraw the write: it may still commit.
    """

    __slots__ = ("_closing", "_dispatch_scheduled", "_loop", "_pending", "_writer")

    def __init__(self, writer: Writer, loop: asyncio.AbstractEventLoop) -> None:
        """Use :meth:`open`."""
        self._writer = writer
        self._loop = loop
        self._pending: list[Job] = []
        self._dispatch_scheduled = False
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
    ) -> Journal:
        """Open (or create) the journal at ``path``.

        A new or empty file gets the schema; an existing journal is checked: a file that is not
        an SQLite database, an SQLite file of another application, or a journal written by a newer
        kling_async raises :class:`JournalFormatError` and is left untouched. ``clock`` stamps
        ``intent_at``/``updated_at`` (wall time by default). ``busy_timeout`` (seconds) is how
        long a write waits for another process holding the file's write lock.
        """
        loop = asyncio.get_running_loop()
        writer = Writer(os.fspath(path), clock, busy_timeout)
        writer.thread.start()
        try:
            await asyncio.wrap_future(writer.ready)
        except asyncio.CancelledError:
            writer.stop()  # the thread closes the connection once it is open
            raise
        except BaseException:
            await asyncio.wrap_future(writer.done)
            writer.thread.join()  # it has nothing left to do but return
            raise
        return cls(writer, loop)

    @staticmethod
    def read(path: str | os.PathLike[str]) -> list[JournalEntry]:
        """Every entry of the journal at ``path``, in insertion order, read synchronously.

        For reports and the CLI: opens the file read-only (no writer thread), and works while a
        running batch has the file open — it sees what that batch has committed.
        """
        with contextlib.closing(connect(os.fspath(path), read_only=True, busy_timeout=5.0)) as c:
            return select_entries(c, os.fspath(path))

    @property
    def path(self) -> str:
        """The journal's file."""
        return self._writer.path

    @property
    def commits(self) -> int:
        """Transactions committed so far (group commit makes this much less than the writes)."""
        return self._writer.commits

    @property
    def writes(self) -> int:
        """``record_*`` calls committed so far."""
        return self._writer.writes

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing is not None

    async def record_intents(self, intents: Sequence[Intent]) -> None:
        """Record requests about to be sent; durable when this returns.

        A key already in the journal is left as it is, so a re-run can record its whole batch
        again without losing what the first run learned.
        """
        rows = list(intents)
        if not rows:
            self._check_usable()
            return

        def op(conn: sqlite3.Connection, now: float) -> None:
            conn.executemany(
                "INSERT INTO entry (key, request, sent_at, intent_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                [
                    (i.key, json_text(i.request, "Intent.request"), i.sent_at, now, now)
                    for i in rows
                ],
            )

        await self._write(op)

    async def record_sent(self, key: str, sent_at: float) -> None:
        """Note that the POST for ``key`` is being sent at ``sent_at``; call (and await) it
        before the POST: a re-run then knows the create may exist, and from when. An outcome
        recorded by an earlier attempt (``not_sent``, ``ambiguous``) is cleared: this send
        supersedes it, and a re-run must look for its task rather than trust the old one."""

        def op(conn: sqlite3.Connection, now: float) -> None:
            sql = (
                "UPDATE entry SET sent_at = ?, outcome = NULL, detail = NULL, updated_at = ?"
                " WHERE key = ?"
            )
            update(conn, key, sql, (sent_at, now))

        await self._write(op)

    async def record_created(self, key: str, task_id: str, created_at_ms: int) -> None:
        """Record the task the POST for ``key`` created.

        Recording the same task id again is a no-op; a *different* task id for a key that
        already has one raises :class:`JournalError` (it would lose a paid task).
        """
        if not isinstance(task_id, str) or not task_id:
            raise ValueError(f"task_id must be a non-empty string, got {task_id!r}")

        def op(conn: sqlite3.Connection, now: float) -> None:
            row = conn.execute("SELECT task_id FROM entry WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise unknown_key(key)
            if row[0] is not None and row[0] != task_id:
                raise JournalError(
                    f"key {key!r} already has task {row[0]}; refusing to replace it with {task_id}"
                )
            conn.execute(
                "UPDATE entry SET task_id = ?, created_at_ms = ?, updated_at = ? WHERE key = ?",
                (task_id, created_at_ms, now, key),
            )

        await self._write(op)

    async def record_status(self, key: str, status: str, task_json: bytes | None) -> None:
        """Record the last status seen for ``key``'s task and the task as JSON (``serde.dumps``
        bytes), both as given (``None`` clears the stored JSON)."""

        def op(conn: sqlite3.Connection, now: float) -> None:
            blob = None if task_json is None else sqlite3.Binary(task_json)
            sql = "UPDATE entry SET status = ?, task_json = ?, updated_at = ? WHERE key = ?"
            update(conn, key, sql, (status, blob, now))

        await self._write(op)

    async def record_outcome(self, key: str, outcome: str, detail: Mapping[str, Any]) -> None:
        """Record how ``key`` ended: ``outcome`` is one of :data:`OUTCOMES`, ``detail`` a JSON-able
        mapping (for a ``succeed``, ``video_id``/``parent_video_id`` feed :meth:`lineage`).

        A later call replaces the outcome (e.g. a ``timed_out`` task watched to its end on a
        re-run).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")

        def op(conn: sqlite3.Connection, now: float) -> None:
            sql = "UPDATE entry SET outcome = ?, detail = ?, updated_at = ? WHERE key = ?"
            update(conn, key, sql, (outcome, json_text(detail, "detail"), now))

        await self._write(op)

    async def record_slot_limit(self, limit: int) -> None:
        """Remember the account's parallel-task limit a batch learned, for a resumed run."""

        def op(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('slot_limit', ?)"
                " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (str(int(limit)),),
            )

        await self._write(op)

    async def slot_limit(self) -> int | None:
        """The slot limit recorded by :meth:`record_slot_limit`, or ``None``."""

        def op(conn: sqlite3.Connection, _now: float) -> int | None:
            row = conn.execute("SELECT value FROM meta WHERE name = 'slot_limit'").fetchone()
            value = str(row[0]) if row is not None else ""
            return int(value) if value.isdigit() and 1 <= int(value) <= 100_000 else None

        result: int | None = await self._submit(op, writes=False)
        return result

    async def record_durations(self, model: Mapping[str, Any]) -> None:
        """Keep what a batch learned of how long tasks take (``DurationModel.to_dict()``)."""
        text = json_text(model, "durations")

        def op(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('durations', ?)"
                " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (text,),
            )

        await self._write(op)

    async def durations(self) -> dict[str, Any] | None:
        """What :meth:`record_durations` kept, or ``None`` (also for an unreadable value)."""

        def op(conn: sqlite3.Connection, _now: float) -> dict[str, Any] | None:
            row = conn.execute("SELECT value FROM meta WHERE name = 'durations'").fetchone()
            if row is None:
                return None
            try:
                value = json.loads(str(row[0]))
            except ValueError:
                return None
            return value if isinstance(value, dict) else None

        result: dict[str, Any] | None = await self._submit(op, writes=False)
        return result

    async def entries(self) -> list[JournalEntry]:
        """Every entry, in insertion order; sees every ``record_*`` call that returned."""
        result: list[JournalEntry] = await self._submit(
            lambda conn, _: select_entries(conn, self.path), writes=False
        )
        return result

    async def lineage(self) -> list[tuple[str, str]]:
        """``(parent video id, child video id)`` for each succeeded request, in insertion order
        (see :func:`~kling_async.journal.records.lineage_of`)."""
        return lineage_of(await self.entries())

    async def close(self) -> None:
        """Commit what is queued, close the file and end the writer thread; idempotent."""
        if self._closing is None:
            self._dispatch()  # queued before the stop sentinel, so flushed before closing
            self._writer.stop()
            self._closing = asyncio.wrap_future(self._writer.done)
        await asyncio.shield(self._closing)
        self._writer.thread.join()  # it set `done` as its last act: this returns at once

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Journal {self.path!r} {state}, {self.commits} commits>"

    def __del__(self) -> None:
        if getattr(self, "_closing", True) is None:
            warnings.warn(f"unclosed journal {self._writer.path!r}", ResourceWarning, stacklevel=1)
            self._writer.stop()

    # --- internals ---

    def _check_usable(self) -> None:
        if self._closing is not None:
            raise JournalClosedError(f"journal {self.path} is closed")
        if asyncio.get_running_loop() is not self._loop:
            raise JournalError(f"journal {self.path} belongs to another event loop")
        if self._writer.failure is not None:  # pragma: no cover - only a bug gets here
            raise self._writer.dead()

    async def _write(self, op: Op) -> None:
        await self._submit(op, writes=True)

    def _submit(self, op: Op, *, writes: bool) -> asyncio.Future[Any]:
        self._check_usable()
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append(Job(op, future, writes))
        if not self._dispatch_scheduled:
            # Hand over at the end of this loop iteration, so every call made in it (a gather
            # of 1,000 record_created, say) travels to the writer as one batch.
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch)
        return future

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        if self._pending:
            jobs, self._pending = self._pending, []
            if self._writer.failure is None:
                self._writer.submit(self._loop, jobs)
            else:  # pragma: no cover - only a bug gets here
                resolve(jobs, [(False, self._writer.dead()) for _ in jobs])
