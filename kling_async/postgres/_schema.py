"""The one place for the PostgreSQL schema: a versioned list of migrations, applied on first use.

Each :class:`Migration` is applied once, in order, and recorded in ``kling_schema_version``.
:func:`migrate` takes a transaction-scoped advisory lock first, so processes starting together
(four workers, three replicas) apply each migration exactly once while the others wait for it;
a database already up to date costs one query and no lock. A database whose schema is newer than
this code knows is refused rather than written to. Plain SQL of PostgreSQL 13 and later.

Every table is prefixed ``kling_``: the database may be shared with the application's own.
To change the schema, append a migration — never edit one that has shipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..errors import DatabaseError

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    #: A connection opened alone or lent by a pool: what SQL helpers take (typing only).
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "migrate", "schema_version"]


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


# "KLNJSCHM": the key of the advisory lock that serialises migrations in one database.
_LOCK = 0x4B4C4E4A5343484D

_BATCH_JOURNAL = """
-- One row per worker process of a shared batch: its claims are valid while its lease is.
CREATE TABLE kling_batch_worker (
    batch       TEXT        NOT NULL,
    worker      TEXT        NOT NULL,   -- random id, one per run of a worker
    host        TEXT        NOT NULL,
    pid         INTEGER     NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ NOT NULL,   -- the database's clock: machines' clocks never compared
    PRIMARY KEY (batch, worker)
);

-- The journal of a batch (the SQLite journal's `entry`, one batch per name).
CREATE TABLE kling_batch_entry (
    batch         TEXT             NOT NULL,
    key           TEXT             NOT NULL,  -- the caller's id of the request within the batch
    seq           BIGINT           GENERATED ALWAYS AS IDENTITY,  -- insertion order
    request       TEXT             NOT NULL,  -- the request as sent, JSON
    sent_at       DOUBLE PRECISION,           -- when the POST was sent (the sender's clock)
    task_id       TEXT,
    created_at_ms BIGINT,                     -- the server's created_at
    status        TEXT,                       -- last status seen
    task_json     BYTEA,                      -- the task as last seen, JSON bytes
    outcome       TEXT,                       -- final outcome, one of journal.OUTCOMES
    detail        TEXT,                       -- JSON object describing the outcome
    intent_at     DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    claimed_by    TEXT,                       -- the worker handling it (kling_batch_worker)
    PRIMARY KEY (batch, key)
);
CREATE INDEX kling_batch_entry_open ON kling_batch_entry (batch, seq) WHERE outcome IS NULL;

-- What a batch learned of the account (slot limit, durations), for every worker and re-run.
CREATE TABLE kling_batch_meta (
    batch TEXT NOT NULL,
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (batch, name)
);
"""

_COORDINATION = """
-- One row per slot held by a process of an account (coordinator.py): a create in flight, or a
-- task not yet seen ending. Valid while its holder renews it; an expired row is deleted by
-- whoever counts next, so a dead process's slots come back.
CREATE TABLE kling_slot_lease (
    lease      TEXT        PRIMARY KEY,  -- random, made by the holder
    account    TEXT        NOT NULL,     -- a digest of the credentials and base URL
    holder     TEXT        NOT NULL,     -- random id, one per coordinator (process)
    weight     INTEGER     NOT NULL,
    task_id    TEXT,                     -- set once the create made a task
    expires_at TIMESTAMPTZ NOT NULL      -- the database's clock
);
CREATE INDEX kling_slot_lease_account ON kling_slot_lease (account);

-- What the processes of an account learned of it: the slot limit (from 1303 answers).
CREATE TABLE kling_account (
    account    TEXT        PRIMARY KEY,
    slot_limit INTEGER,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Callbacks received by any process, for the others (a NOTIFY names the row); kept a while so
-- a process whose LISTEN connection dropped reads what it missed.
CREATE TABLE kling_callback (
    id        BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account   TEXT        NOT NULL,
    origin    TEXT        NOT NULL,      -- the publishing coordinator (it skips its own)
    task_json TEXT        NOT NULL,
    trusted   BOOLEAN     NOT NULL,      -- the receiver verified its signature
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX kling_callback_recent ON kling_callback (account, at);
"""

_PARENT_TURNS = """
-- On a relay, creates of one parent video take turns across the workers of a batch (one
-- unsettled create per parent at a time): the row names the worker holding the turn, valid
-- while that worker's lease is (kling_batch_worker), so a dead worker's turn comes back.
CREATE TABLE kling_batch_turn (
    batch  TEXT NOT NULL,
    parent TEXT NOT NULL,   -- the parent video id
    worker TEXT NOT NULL,
    PRIMARY KEY (batch, parent)
);
"""

#: Every migration, in order. Append here (the next is version 4); never edit a shipped one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "shared batch journal", _BATCH_JOURNAL),
    Migration(2, "client coordination: slot leases, learned limits, callbacks", _COORDINATION),
    Migration(3, "relay parent turns across the workers of a batch", _PARENT_TURNS),
)

#: The schema version this code writes.
LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS kling_schema_version (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


async def schema_version(conn: Connection) -> int:
    """The highest migration applied to the database ``conn`` is in; 0 for a bare database."""
    if await conn.fetchval("SELECT to_regclass('kling_schema_version')") is None:
        return 0
    value = await conn.fetchval("SELECT max(version) FROM kling_schema_version")
    return int(value or 0)


async def migrate(
    conn: Connection,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    *,
    where: str = "the database",
) -> int:
    """Apply every migration not yet applied, in one transaction under an advisory lock;
    returns the schema version. Safe to call from many processes at once, and again and again.
    ``where`` names the database in errors (a redacted DSN)."""
    latest = migrations[-1].version
    current = await schema_version(conn)
    if current == latest:
        return current  # the common case: no lock, no transaction
    _refuse_newer(current, latest, where)
    async with conn.transaction():
        # Held to the end of this transaction: a second process blocks here, then finds the
        # migrations applied and does nothing.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await conn.execute(_VERSION_TABLE)
        rows = await conn.fetch("SELECT version FROM kling_schema_version")
        applied = {int(row["version"]) for row in rows}
        _refuse_newer(max(applied, default=0), latest, where)
        for migration in migrations:
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO kling_schema_version (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
    return latest


def _refuse_newer(current: int, latest: int, where: str) -> None:
    if current > latest:
        raise DatabaseError(
            f"PostgreSQL at {where} has kling_async schema version {current}, written by a newer "
            f"kling_async; this version knows up to {latest}: upgrade kling_async"
        )
