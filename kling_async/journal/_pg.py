"""The SQL of the shared journal (:mod:`.postgres`): claims, leases, reading rows back.

Each function is one statement, or one short transaction, on a connection it is lent; the
tables are in :mod:`kling_async.postgres._schema`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING, Any

from ._schema import ENTRY_COLUMNS, entry_from_row, unknown_key
from .records import ClaimLostError, JournalEntry, JournalError

if TYPE_CHECKING:
    import asyncpg

    from ..postgres._schema import Connection

__all__ = [
    "claim",
    "claim_orphans",
    "created",
    "held_elsewhere",
    "insert",
    "join",
    "leave",
    "meta",
    "refused",
    "renew",
    "select_entries",
    "sent",
    "set_meta",
    "settled",
]

COLUMNS = ", ".join(f"e.{name.strip()}" for name in ENTRY_COLUMNS.split(","))
# A claim is free when nobody holds it, or its holder's lease is over (or its row is gone).
_FREE = """(e.claimed_by IS NULL OR NOT EXISTS (
    SELECT 1 FROM kling_batch_worker w
    WHERE w.batch = e.batch AND w.worker = e.claimed_by AND w.lease_until > now()))"""
_RENEW = (
    "UPDATE kling_batch_worker SET lease_until = now() + make_interval(secs => $3)"
    " WHERE batch = $1 AND worker = $2"
)
# Outcomes after which nobody sends again (ambiguous and not_sent are looked at again).
_FINISHED = ("succeed", "failed", "rejected")


async def join(conn: Connection, batch: str, worker: str, lease: float) -> None:
    await conn.execute(
        "INSERT INTO kling_batch_worker (batch, worker, host, pid, lease_until)"
        " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        batch, worker, socket.gethostname()[:200], os.getpid(), lease,
    )  # fmt: skip
    # Workers gone for a day only clutter the table (their claims read as free anyway).
    await conn.execute(
        "DELETE FROM kling_batch_worker"
        " WHERE batch = $1 AND lease_until < now() - interval '1 day'",
        batch,
    )


async def insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Intents ``(batch, key, request, sent_at, now, claimed_by)``; a key already there stays."""
    await conn.executemany(
        "INSERT INTO kling_batch_entry (batch, key, request, sent_at, intent_at, updated_at,"
        " claimed_by) VALUES ($1, $2, $3, $4, $5, $5, $6) ON CONFLICT (batch, key) DO NOTHING",
        rows,
    )


async def renew(conn: Connection, batch: str, worker: str, lease: float) -> None:
    await conn.execute(_RENEW, batch, worker, lease)


async def leave(conn: Connection, batch: str, worker: str) -> None:
    """Hand back every claim of ``worker`` and remove it from the batch."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE kling_batch_entry SET claimed_by = NULL WHERE batch = $1 AND claimed_by = $2",
            batch, worker,
        )  # fmt: skip
        await conn.execute(
            "DELETE FROM kling_batch_worker WHERE batch = $1 AND worker = $2", batch, worker
        )


async def sent(
    conn: Connection, batch: str, worker: str, key: str, sent_at: float, now: float, lease: float
) -> bool:
    """Record the send of ``key``, renewing the lease and taking the claim in one statement;
    ``False`` if the key is unknown or a live worker holds it."""
    done = await conn.fetchval(
        f"WITH renewed AS ({_RENEW.replace('$3', '$5')} RETURNING 1)"
        " UPDATE kling_batch_entry e SET sent_at = $3, outcome = NULL, detail = NULL,"
        " updated_at = $4, claimed_by = $2"
        f" WHERE e.batch = $1 AND e.key = $6 AND (e.claimed_by = $2 OR {_FREE}) RETURNING 1",
        batch, worker, sent_at, now, lease, key,
    )  # fmt: skip
    return done is not None


async def created(
    conn: Connection, batch: str, key: str, task_id: str, created_at_ms: int, now: float
) -> None:
    """Record ``key``'s task id: the same one again is a no-op, another one is refused."""
    done = await conn.fetchval(
        "UPDATE kling_batch_entry SET task_id = $3, created_at_ms = $4, updated_at = $5"
        " WHERE batch = $1 AND key = $2 AND (task_id IS NULL OR task_id = $3) RETURNING 1",
        batch, key, task_id, created_at_ms, now,
    )  # fmt: skip
    if done is not None:
        return
    known = await conn.fetchval(
        "SELECT task_id FROM kling_batch_entry WHERE batch = $1 AND key = $2", batch, key
    )
    if known is None:
        raise unknown_key(key)
    message = f"key {key!r} already has task {known}; refusing to replace it with {task_id}"
    raise JournalError(message)


async def set_meta(conn: Connection, batch: str, name: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO kling_batch_meta (batch, name, value) VALUES ($1, $2, $3)"
        " ON CONFLICT (batch, name) DO UPDATE SET value = excluded.value",
        batch, name, value,
    )  # fmt: skip


async def meta(conn: Connection, batch: str, name: str) -> str | None:
    value = await conn.fetchval(
        "SELECT value FROM kling_batch_meta WHERE batch = $1 AND name = $2", batch, name
    )
    return None if value is None else str(value)


def settled(task: asyncio.Future[Any]) -> None:
    """A journal call's caller may be gone (cancelled): its outcome is taken here, so none is
    left unread."""
    if not task.cancelled():
        task.exception()


async def refused(conn: Connection, batch: str, key: str, where: str) -> JournalError:
    """Why a fenced write of ``key`` was refused: no such key, or another worker holds it."""
    holder = await conn.fetchval(
        "SELECT coalesce(claimed_by, '') FROM kling_batch_entry WHERE batch = $1 AND key = $2",
        batch, key,
    )  # fmt: skip
    if holder is None:
        return unknown_key(key)
    return ClaimLostError(f"journal {where}: request {key!r} is held by worker {holder}; not sent")


async def claim(
    conn: Connection, batch: str, worker: str, key: str, request: str, now: float, where: str
) -> JournalEntry | None:
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO kling_batch_entry (batch, key, request, intent_at, updated_at,"
            " claimed_by) VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (batch, key) DO NOTHING",
            batch, key, request, now, worker,
        )  # fmt: skip
        row = await conn.fetchrow(
            f"SELECT {COLUMNS}, (e.claimed_by = $3 OR {_FREE}) AS free"
            " FROM kling_batch_entry e WHERE e.batch = $1 AND e.key = $2 FOR UPDATE",
            batch, key, worker,
        )  # fmt: skip
        assert row is not None
        entry = _entry(row, where)
        if entry.outcome in _FINISHED:
            return entry
        if not row["free"]:
            return None
        await conn.execute(
            "UPDATE kling_batch_entry SET claimed_by = $3 WHERE batch = $1 AND key = $2",
            batch, key, worker,
        )  # fmt: skip
        return entry


async def claim_orphans(
    conn: Connection, batch: str, worker: str, limit: int, where: str
) -> list[JournalEntry]:
    rows = await conn.fetch(
        "WITH orphan AS (SELECT e.key FROM kling_batch_entry e"
        " WHERE e.batch = $1 AND e.outcome IS NULL AND e.claimed_by IS DISTINCT FROM $2"
        f" AND {_FREE} ORDER BY e.seq LIMIT $3 FOR UPDATE OF e SKIP LOCKED)"
        " UPDATE kling_batch_entry e SET claimed_by = $2 FROM orphan"
        f" WHERE e.batch = $1 AND e.key = orphan.key RETURNING {COLUMNS}, e.seq",
        batch, worker, limit,
    )  # fmt: skip
    return [_entry(row, where) for row in sorted(rows, key=lambda row: int(row["seq"]))]


async def held_elsewhere(conn: Connection, batch: str, worker: str) -> int:
    value = await conn.fetchval(
        "SELECT count(*) FROM kling_batch_entry e WHERE e.batch = $1"
        f" AND e.outcome IS NULL AND e.claimed_by <> $2 AND NOT {_FREE}",
        batch, worker,
    )  # fmt: skip
    return int(value)


async def select_entries(conn: Connection, batch: str, where: str) -> list[JournalEntry]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM kling_batch_entry e WHERE e.batch = $1 ORDER BY e.seq", batch
    )
    return [_entry(row, where) for row in rows]


def _entry(row: asyncpg.Record, where: str) -> JournalEntry:
    try:
        return entry_from_row(tuple(row.values())[:11])
    except (ValueError, TypeError) as exc:  # JSON mangled by hand
        message = f"journal {where}: read failed, an entry is damaged: {exc}"
        raise JournalError(message, path=where, operation="read") from exc
