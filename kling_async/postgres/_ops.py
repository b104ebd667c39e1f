"""The writes a coordinator makes in the background (:mod:`.coordinator`), one op each: safe to
repeat (an update, a delete by key, an upsert), so an outage is waited out by repeating them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._schema import Connection

__all__ = ["give_back_unused", "write"]


async def write(conn: Connection, op: str, value: Any, *, account: str, channel: str) -> None:
    """``op`` of a lease (``task``, ``release``), a task (``ended``) or the account's learned
    ``limit``, in one short transaction."""
    async with conn.transaction():
        if op == "task":
            await conn.execute(
                "UPDATE kling_slot_lease SET task_id = $2 WHERE lease = $1",
                value.key,
                value.task_id,
            )
            # A task holds one slot: a row another process (dead, its task taken over)
            # still has for it goes, rather than count the task twice until it ends.
            await conn.execute(
                "DELETE FROM kling_slot_lease WHERE account = $1 AND task_id = $2 AND lease <> $3",
                account,
                value.task_id,
                value.key,
            )
        elif op == "ended":  # its holder may be dead: the slot is free once the task ended
            await conn.execute(
                "DELETE FROM kling_slot_lease WHERE account = $1 AND task_id = $2",
                account,
                value,
            )
            await conn.execute("SELECT pg_notify($1, 's')", channel)
        elif op == "release":
            await conn.execute("DELETE FROM kling_slot_lease WHERE lease = $1", value.key)
            await conn.execute("SELECT pg_notify($1, 's')", channel)
        elif op == "limit":
            await conn.execute(
                "INSERT INTO kling_account (account, slot_limit) VALUES ($1, $2) "
                "ON CONFLICT (account) DO UPDATE "
                "SET slot_limit = EXCLUDED.slot_limit, updated_at = now()",
                account,
                value,
            )


async def give_back_unused(conn: Connection, holder: str, channel: str) -> None:
    """On closing: the slots of ``holder``'s creates that made no task go back (those of its
    running tasks stay counted until their lease runs out: they do hold the account's)."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM kling_slot_lease WHERE holder = $1 AND task_id IS NULL", holder
        )
        await conn.execute("SELECT pg_notify($1, 's')", channel)
