"""The SQLite file of a journal: its schema, how it is opened, checked and read."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Mapping
from typing import Any

from .records import JournalEntry, JournalError, JournalFormatError

__all__ = [
    "APPLICATION_ID",
    "ENTRY_COLUMNS",
    "SCHEMA_VERSION",
    "connect",
    "create_private",
    "json_text",
    "damaged",
    "entry_from_row",
    "select_entries",
    "unknown_key",
    "update",
]

#: Version of the file layout written by this module (``PRAGMA user_version``).
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a journal: "KLNJ" — tells our files from other SQLite files.
APPLICATION_ID = 0x4B4C4E4A

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
# Added without a version bump: older readers ignore it, and it is created when missing.
_META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
ENTRY_COLUMNS = (
    "key, request, task_id, created_at_ms, status, task_json, outcome, detail, intent_at,"
    " updated_at, sent_at"
)


def connect(path: str, *, read_only: bool, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` as a journal: check (or, when writing to a new file, create) the schema."""
    created: list[str] = []
    if read_only:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no journal at {path}")
        uri = "file:" + _uri_path(path) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout)
    else:
        created = create_private(path)
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        _configure(conn, path, read_only=read_only, busy_timeout=busy_timeout)
    except sqlite3.Error as exc:
        conn.close()
        raise damaged(path, "open", exc) from exc
    except BaseException:
        conn.close()
        if not read_only:  # a refused file is left as it was: no side files of ours beside it
            for name in created:
                with contextlib.suppress(OSError):
                    if name != path and os.path.getsize(name) == 0:
                        os.unlink(name)
        raise
    return conn


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def create_private(path: str, suffixes: tuple[str, ...] = ("", "-wal", "-shm")) -> list[str]:
    """Make the journal's files (the database and SQLite's side files) 0600 before SQLite
    does (it creates them 0644, and follows a symbolic link planted in their place): they
    hold prompts and callback URLs. A symbolic link at any of them is refused. Returns the
    files it created."""
    created = []
    for name in (path + suffix for suffix in suffixes):
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        except FileExistsError:
            if os.path.islink(name):
                raise JournalError(f"{name} is a symbolic link; refusing to follow it") from None
            continue
        os.close(fd)
        created.append(name)
    return created


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
    conn.execute(_META)  # what a batch learned about the account (its slot limit)


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


def select_entries(conn: sqlite3.Connection, path: str) -> list[JournalEntry]:
    """Every entry; a damaged file or entry is a :class:`JournalError` naming ``path``."""
    try:
        rows = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entry ORDER BY seq").fetchall()
        return [entry_from_row(row) for row in rows]
    except (sqlite3.Error, ValueError, TypeError) as exc:  # a bad page; JSON or columns mangled
        raise damaged(path, "read", exc) from exc


def damaged(path: str, operation: str, exc: BaseException) -> JournalError:
    """The error for a journal file that failed an ``operation`` (open, read, write)."""
    return JournalError(
        f"journal {path}: {operation} failed, the file may be damaged: {exc}",
        path=path,
        operation=operation,
    )


def entry_from_row(row: tuple[Any, ...]) -> JournalEntry:
    """The entry of a row of ``ENTRY_COLUMNS``, in order (both storages select them so)."""
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


def json_text(value: Mapping[str, Any], what: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    # Strict JSON (no NaN) so that any tool can read the file back.
    return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def update(conn: sqlite3.Connection, key: str, sql: str, params: tuple[Any, ...]) -> None:
    if conn.execute(sql, (*params, key)).rowcount == 0:
        raise unknown_key(key)


def unknown_key(key: str) -> JournalError:
    return JournalError(f"no intent recorded for key {key!r}; record_intents comes first")
