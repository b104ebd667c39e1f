"""The SQL of the shared journal (:mod:`.postgres`): claims, leases, reading rows back.

Each function is one statement, or one short transaction, on a connection it is lent; the
tables are in :mod:`kling_async.postgres._schema`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
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
    "finished",
    "give_turn",
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
    "take_turn",
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
    # An upsert: joining again after a lost answer finds the row there and only renews it.
    await conn.execute(
        "INSERT INTO kling_batch_worker (batch, worker, host, pid, lease_until)"
        " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))"
        " ON CONFLICT (batch, worker) DO UPDATE SET lease_until = EXCLUDED.lease_until",
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
    ``False`` if the key is unknown or a live worker holds it.

    Run again after a lost answer, it checks what the lost attempt did rather than repeating
    it blindly: it passes only if the claim is still this worker's (the lost attempt took it,
    and nobody took it over since) or free, and then renews the lease from now — so a worker
    whose lease ran out during an outage, its request taken over, sends nothing."""
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


async def finished(
    conn: Connection,
    batch: str,
    worker: str,
    key: str,
    outcome: str,
    detail: str,
    now: float,
    where: str,
) -> None:
    """Record ``key``'s final outcome, fenced like :func:`sent`: refused with
    :class:`ClaimLostError` while another live worker holds the request (it took it over when
    this worker's lease ran out, and reports it). So one worker reports each request. The same
    outcome again is a no-op: safe to repeat."""
    done = await conn.fetchval(
        "UPDATE kling_batch_entry e SET outcome = $4, detail = $5, updated_at = $6"
        f" WHERE e.batch = $1 AND e.key = $3 AND (e.claimed_by = $2 OR {_FREE}) RETURNING 1",
        batch, worker, key, outcome, detail, now,
    )  # fmt: skip
    if done is None:
        raise await refused(conn, batch, key, where, "its outcome is reported there")


async def take_turn(conn: Connection, batch: str, worker: str, parent: str) -> bool:
    """Take the turn of parent video ``parent`` for ``worker``: ``False`` while another live
    worker holds it. Taking it again (a lost answer) is a no-op."""
    done = await conn.fetchval(
        "INSERT INTO kling_batch_turn AS t (batch, parent, worker) VALUES ($1, $2, $3)"
        " ON CONFLICT (batch, parent) DO UPDATE SET worker = EXCLUDED.worker"
        " WHERE t.worker = EXCLUDED.worker OR NOT EXISTS (SELECT 1 FROM kling_batch_worker w"
        " WHERE w.batch = t.batch AND w.worker = t.worker AND w.lease_until > now())"
        " RETURNING 1",
        batch, parent, worker,
    )  # fmt: skip
    return done is not None


async def give_turn(conn: Connection, batch: str, worker: str, parent: str) -> None:
    await conn.execute(
        "DELETE FROM kling_batch_turn WHERE batch = $1 AND parent = $2 AND worker = $3",
        batch, parent, worker,
    )  # fmt: skip


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


async def refused(
    conn: Connection, batch: str, key: str, where: str, what: str = "not sent"
) -> JournalError:
    """Why a fenced write of ``key`` was refused: no such key, or another worker holds it
    (``what``: what this worker does not do for it, then)."""
    holder = await conn.fetchval(
        "SELECT coalesce(claimed_by, '') FROM kling_batch_entry WHERE batch = $1 AND key = $2",
        batch, key,
    )  # fmt: skip
    if holder is None:
        return unknown_key(key)
    return ClaimLostError(f"journal {where}: request {key!r} is held by worker {holder}; {what}")


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
    conn: Connection,
    batch: str,
    worker: str,
    limit: int,
    where: str,
    known_own: Sequence[str] | None = None,
) -> list[JournalEntry]:
    """``known_own``: after a lost answer, the keys this worker already knows it holds; an
    unfinished request it holds beyond those was taken by the lost attempt and is returned
    again, rather than held by a worker that does not know it has it."""
    own = "FALSE" if known_own is None else "(e.claimed_by = $2 AND e.key <> ALL($4::text[]))"
    rows = await conn.fetch(
        "WITH orphan AS (SELECT e.key FROM kling_batch_entry e"
        " WHERE e.batch = $1 AND e.outcome IS NULL"
        f" AND ((e.claimed_by IS DISTINCT FROM $2 AND {_FREE}) OR {own})"
        " ORDER BY e.seq LIMIT $3 FOR UPDATE OF e SKIP LOCKED)"
        " UPDATE kling_batch_entry e SET claimed_by = $2 FROM orphan"
        f" WHERE e.batch = $1 AND e.key = orphan.key RETURNING {COLUMNS}, e.seq",
        batch, worker, limit, *(() if known_own is None else (list(known_own),)),
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
