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
import concurrent.futures
import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import attrs

from .clock import Clock
from .errors import KlingError

__all__ = [
    "OUTCOMES",
    "SCHEMA_VERSION",
    "Intent",
    "Journal",
    "JournalClosedError",
    "JournalEntry",
    "JournalError",
    "JournalFormatError",
]

#: Version of the file layout written by this module (``PRAGMA user_version``).
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a journal: "KLNJ" — tells our files from other SQLite files.
APPLICATION_ID = 0x4B4C4E4A
#: The final outcomes :meth:`Journal.record_outcome` accepts.
OUTCOMES = frozenset({"succeed", "failed", "rejected", "timed_out", "ambiguous", "not_sent"})

_SCHEMA = """
CREATE TABLE entry (
    seq           INTEGER PRIMARY KEY,      -- insertion order
    key           TEXT    NOT NULL UNIQUE,  -- the caller's id of the request within the batch
    request       TEXT    NOT NULL,         -- the request, JSON
    sent_at       REAL,                     -- when the POST was sent (caller's clock)
    task_id       TEXT,
    created_at_ms INTEGER,                  -- the server's created_at
    status        TEXT,                     -- last status seen
    task_json     BLOB,                     -- the task as last seen, JSON bytes
    outcome       TEXT,                     -- final outcome, one of OUTCOMES
    detail        TEXT,                     -- JSON object describing the outcome
    intent_at     REAL    NOT NULL,
    updated_at    REAL    NOT NULL
)
"""
_COLUMNS = (
    "key, request, task_id, created_at_ms, status, task_json, outcome, detail, intent_at,"
    " updated_at, sent_at"
)


class JournalError(KlingError):
    """The journal could not be opened, read or written."""


class JournalFormatError(JournalError):
    """The file is not a kling_async journal, or was written by a newer version."""


class JournalClosedError(JournalError):
    """The journal was used after :meth:`Journal.close`."""


def _key(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _mapping(_: Any, attribute: attrs.Attribute[Mapping[str, Any]], value: Any) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{attribute.name} must be a mapping, got {type(value).__name__}")


@attrs.frozen
class Intent:
    """A request about to be sent: written before its POST so a crash cannot hide it."""

    #: The caller's stable id of the request within the batch (a line number, its
    #: ``external_task_id``...): the same request must get the same key on a re-run.
    key: str = attrs.field(validator=_key)
    #: The request as JSON (with its ``external_task_id`` when it has one).
    request: Mapping[str, Any] = attrs.field(validator=_mapping)
    #: When the POST was sent, if it already was (else see :meth:`Journal.record_sent`).
    sent_at: float | None = None


@attrs.frozen
class JournalEntry:
    """Everything the journal knows about one request."""

    key: str
    request: dict[str, Any]
    task_id: str | None
    created_at_ms: int | None
    status: str | None
    task_json: bytes | None
    outcome: str | None
    detail: dict[str, Any] | None
    intent_at: float
    updated_at: float
    #: When the POST was sent; ``None`` means it was never sent (so it cannot exist on the server).
    sent_at: float | None = None

    @property
    def state(self) -> Literal["intent", "created", "final"]:
        """``intent``: no task id yet and no outcome (the create may or may not have happened —
        see :attr:`sent_at`); ``created``: a task exists and is not finished; ``final``: an
        outcome was recorded."""
        if self.outcome is not None:
            return "final"
        if self.task_id is not None:
            return "created"
        return "intent"


# --- the writer thread --------------------------------------------------------------------------

_Op = Callable[[sqlite3.Connection, float], Any]


class _Job:
    """One call's work, run inside a savepoint of a shared transaction on the writer thread."""

    __slots__ = ("future", "op", "writes")

    def __init__(self, op: _Op, future: asyncio.Future[Any], writes: bool) -> None:
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
    handle = open(path + ".lock", "a+b")  # noqa: SIM115 (kept open: it is the lock)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise JournalError(
            f"journal {path} is in use by another process (another batch still running?)"
        ) from None
    return handle


class _Writer:
    """Owns the connection; runs batches of jobs, one transaction per drain of the queue."""

    def __init__(self, path: str, clock: Clock | None, busy_timeout: float) -> None:
        self.path = path
        self._time: Callable[[], float] = time.time if clock is None else clock.time
        self._busy_timeout = busy_timeout
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, list[_Job]] | None] = (
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

    def submit(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        self._queue.put((loop, jobs))

    def stop(self) -> None:
        """Ask the thread to finish what is queued, close the connection and end."""
        self._queue.put(None)

    def _run(self) -> None:
        try:
            lock = _lock_exclusively(self.path)
        except BaseException as exc:
            self.ready.set_exception(exc)
            self.done.set_result(None)
            return
        try:
            conn = _connect(self.path, read_only=False, busy_timeout=self._busy_timeout)
        except BaseException as exc:
            lock.close()
            self.ready.set_exception(exc)
            self.done.set_result(None)
            return
        self.ready.set_result(None)
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                batches: list[tuple[asyncio.AbstractEventLoop, list[_Job]]] = []
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
        self, conn: sqlite3.Connection, batches: list[tuple[asyncio.AbstractEventLoop, list[_Job]]]
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
                results.append(_run_job(conn, job, now, savepoint=writes))
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
            message = f"journal {self.path}: transaction failed, nothing of it was written: {exc}"
            results = [(False, _chained(JournalError(message), exc)) for _ in jobs]
        offset = 0
        for loop, batch in batches:
            part = results[offset : offset + len(batch)]
            offset += len(batch)
            with contextlib.suppress(RuntimeError):  # the loop was closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, batch, part)

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
                loop.call_soon_threadsafe(_resolve, batch, results)


def _run_job(
    conn: sqlite3.Connection, job: _Job, now: float, *, savepoint: bool
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
            return False, _chained(JournalError(f"journal write failed: {exc}"), exc)
        return False, exc
    if savepoint:
        conn.execute("RELEASE job")
    return True, result


def _chained(error: JournalError, cause: BaseException) -> JournalError:
    error.__cause__ = cause
    return error


def _resolve(jobs: list[_Job], results: list[tuple[bool, Any]]) -> None:
    """On the event loop: wake every caller of a finished transaction."""
    for job, (ok, value) in zip(jobs, results, strict=True):
        if job.future.done():  # the caller was cancelled; its write happened all the same
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)


# --- SQLite setup -------------------------------------------------------------------------------


def _connect(path: str, *, read_only: bool, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` as a journal: check (or, when writing to a new file, create) the schema."""
    if read_only:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no journal at {path}")
        uri = "file:" + _uri_path(path) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout)
    else:
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        _configure(conn, path, read_only=read_only, busy_timeout=busy_timeout)
    except BaseException:
        conn.close()
        raise
    return conn


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path).replace(os.sep, "/"), safe="/:")


def _configure(
    conn: sqlite3.Connection, path: str, *, read_only: bool, busy_timeout: float
) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    try:
        app_id, version, tables = _identity(conn)
    except sqlite3.DatabaseError as exc:  # "file is not a database"
        raise JournalFormatError(
            f"{path} is not a kling_async journal (not an SQLite database: {exc})"
        ) from exc
    new = app_id == 0 and version == 0 and tables == 0
    if new and read_only:
        raise JournalFormatError(f"{path} is not a kling_async journal (it is empty)")
    if not new:
        _check_identity(path, app_id, version)
    if read_only:
        return
    # WAL: readers (Journal.read, a report) never block the writer, and a commit is one append.
    # synchronous=NORMAL: a commit is in the WAL (in the OS page cache) before it returns, so it
    # survives the death of the process — kill -9, OOM, a crash — which is what the journal must
    # survive. FULL would add an fsync per commit, which only matters if the machine itself loses
    # power or the OS crashes; even then the file stays consistent (the last commits roll back)
    # and the resume path still looks tasks up by external_task_id before sending anything.
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(f"journal {path}: cannot use WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous = NORMAL")
    if new:
        conn.execute("BEGIN IMMEDIATE")
        try:
            app_id, version, tables = _identity(conn)  # another process may have won the race
            if app_id == 0 and version == 0 and tables == 0:
                conn.execute(_SCHEMA)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                _check_identity(path, app_id, version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _identity(conn: sqlite3.Connection) -> tuple[int, int, int]:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    return int(app_id), int(version), int(tables)


def _check_identity(path: str, app_id: int, version: int) -> None:
    if app_id != APPLICATION_ID:
        raise JournalFormatError(
            f"{path} is an SQLite file but not a kling_async journal "
            f"(application_id {app_id:#x}, expected {APPLICATION_ID:#x}); refusing to touch it"
        )
    if version > SCHEMA_VERSION:
        raise JournalFormatError(
            f"{path} is a journal of schema version {version}, written by a newer kling_async; "
            f"this version reads up to {SCHEMA_VERSION}: upgrade kling_async"
        )
    if version < 1:
        raise JournalFormatError(f"{path}: journal schema version {version} is not valid")


def _select_entries(conn: sqlite3.Connection) -> list[JournalEntry]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM entry ORDER BY seq").fetchall()
    return [_entry(row) for row in rows]


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    key, request, task_id, created_at_ms, status, task_json, outcome, detail = row[:8]
    return JournalEntry(
        key=key,
        request=json.loads(request),
        task_id=task_id,
        created_at_ms=created_at_ms,
        status=status,
        task_json=None if task_json is None else bytes(task_json),
        outcome=outcome,
        detail=None if detail is None else json.loads(detail),
        intent_at=row[8],
        updated_at=row[9],
        sent_at=row[10],
    )


def _json(value: Mapping[str, Any], what: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    # Strict JSON (no NaN) so that any tool can read the file back.
    return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _update(conn: sqlite3.Connection, key: str, sql: str, params: tuple[Any, ...]) -> None:
    if conn.execute(sql, (*params, key)).rowcount == 0:
        raise _unknown(key)


def _unknown(key: str) -> JournalError:
    return JournalError(f"no intent recorded for key {key!r}; record_intents comes first")


# --- the public class ---------------------------------------------------------------------------


class Journal:
    """Append-mostly record of a batch in one SQLite file (WAL, one writer thread).

    Open with ``journal = await Journal.open(path)`` or
    ``async with await Journal.open(path) as journal:``. One event loop uses a journal; each
    ``record_*`` call returns once its write is committed (durable against the process being
    killed). Cancelling a ``record_*`` call does not withdraw the write: it may still commit.
    """

    __slots__ = ("_closing", "_dispatch_scheduled", "_loop", "_pending", "_writer")

    def __init__(self, writer: _Writer, loop: asyncio.AbstractEventLoop) -> None:
        """Use :meth:`open`."""
        self._writer = writer
        self._loop = loop
        self._pending: list[_Job] = []
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
        writer = _Writer(os.fspath(path), clock, busy_timeout)
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
        with contextlib.closing(_connect(os.fspath(path), read_only=True, busy_timeout=5.0)) as c:
            return _select_entries(c)

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
                [(i.key, _json(i.request, "Intent.request"), i.sent_at, now, now) for i in rows],
            )

        await self._write(op)

    async def record_sent(self, key: str, sent_at: float) -> None:
        """Note that the POST for ``key`` is being sent at ``sent_at``; call (and await) it
        before the POST: a re-run then knows the create may exist, and from when."""

        def op(conn: sqlite3.Connection, now: float) -> None:
            sql = "UPDATE entry SET sent_at = ?, updated_at = ? WHERE key = ?"
            _update(conn, key, sql, (sent_at, now))

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
                raise _unknown(key)
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
            _update(conn, key, sql, (status, blob, now))

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
            _update(conn, key, sql, (outcome, _json(detail, "detail"), now))

        await self._write(op)

    async def entries(self) -> list[JournalEntry]:
        """Every entry, in insertion order; sees every ``record_*`` call that returned."""
        result: list[JournalEntry] = await self._submit(
            lambda conn, _: _select_entries(conn), writes=False
        )
        return result

    async def lineage(self) -> list[tuple[str, str]]:
        """``(parent video id, child video id)`` for each succeeded request, in insertion order.

        The child is ``detail["video_id"]``; the parent is ``detail["parent_video_id"]``, else
        the request's own ``video_id`` (an extend's parent). Entries without both are skipped.
        """
        pairs: list[tuple[str, str]] = []
        for entry in await self.entries():
            if entry.outcome != "succeed" or not entry.detail:
                continue
            child = entry.detail.get("video_id")
            parent = entry.detail.get("parent_video_id", entry.request.get("video_id"))
            if isinstance(child, str) and isinstance(parent, str):
                pairs.append((parent, child))
        return pairs

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

    async def _write(self, op: _Op) -> None:
        await self._submit(op, writes=True)

    def _submit(self, op: _Op, *, writes: bool) -> asyncio.Future[Any]:
        self._check_usable()
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append(_Job(op, future, writes))
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
                _resolve(jobs, [(False, self._writer.dead()) for _ in jobs])
