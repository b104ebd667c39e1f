"""The PostgreSQL plumbing against a real server: connecting, the schema and its migrations."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from kling_async.errors import ConfigurationError, DatabaseError
from kling_async.postgres import (
    LATEST_VERSION,
    MIGRATIONS,
    Database,
    Migration,
    is_dsn,
    migrate,
    redact_dsn,
    schema_version,
)
from tests.conftest import no_postgres
from tests.pg_server import PASSWORD_ROLE, find_bindir


async def _applied(db: Database) -> list[int]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT version FROM kling_schema_version ORDER BY version")
    return [int(row["version"]) for row in rows]


async def test_open_migrates_and_connects(pg_dsn: str) -> None:
    async with await Database.open(pg_dsn) as db:
        async with db.pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
            assert await schema_version(conn) == LATEST_VERSION
            tables = {
                row["tablename"]
                for row in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE tablename LIKE 'kling_%'"
                )
            }
        assert {"kling_schema_version", "kling_batch_entry", "kling_batch_worker"} <= tables
        assert await _applied(db) == [m.version for m in MIGRATIONS]
    assert db.closed
    with pytest.raises(DatabaseError, match="after close"):
        _ = db.pool


async def test_migrating_twice_changes_nothing(pg_dsn: str) -> None:
    async with await Database.open(pg_dsn) as db:
        async with db.pool.acquire() as conn:
            assert await migrate(conn) == LATEST_VERSION
            assert await migrate(conn) == LATEST_VERSION
        assert await _applied(db) == [m.version for m in MIGRATIONS]
    async with await Database.open(pg_dsn) as again:  # a second process, later
        assert await _applied(again) == [m.version for m in MIGRATIONS]


async def test_concurrent_first_uses_do_not_race(pg_dsn: str) -> None:
    """Eight processes' first use at once (eight pools, one bare database): each migration is
    applied once, nobody fails on a table another one created a moment earlier."""
    bare = await asyncpg.connect(pg_dsn)
    try:
        assert await schema_version(bare) == 0
    finally:
        await bare.close()
    dbs = await asyncio.gather(*(Database.open(pg_dsn) for _ in range(8)))
    try:
        assert await _applied(dbs[0]) == [m.version for m in MIGRATIONS]
    finally:
        await asyncio.gather(*(db.close() for db in dbs))


async def test_an_appended_migration_is_applied_once(pg_dsn: str) -> None:
    later = (*MIGRATIONS, Migration(LATEST_VERSION + 1, "test", "CREATE TABLE kling_test (x INT)"))
    async with await Database.open(pg_dsn) as db, db.pool.acquire() as conn:
        assert await asyncio.gather(migrate(conn, later)) == [LATEST_VERSION + 1]
        assert await migrate(conn, later) == LATEST_VERSION + 1
        assert await conn.fetchval("SELECT count(*) FROM kling_test") == 0
        assert await schema_version(conn) == LATEST_VERSION + 1
        # ...and this code, knowing only up to LATEST_VERSION, now refuses the database.
        with pytest.raises(DatabaseError, match="newer kling_async"):
            await migrate(conn)
    with pytest.raises(DatabaseError, match="newer kling_async"):
        await Database.open(pg_dsn)


async def test_pg_environment_variables(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    host_port, database = pg_dsn.split("@", 1)[1].split("/", 1)
    host, port = host_port.split(":")
    for name, value in {"PGHOST": host, "PGPORT": port, "PGUSER": "postgres",
                        "PGDATABASE": database}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for dsn in ("", "postgresql://"):
        async with await Database.open(dsn) as db, db.pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_database()") == database
        assert "PG* environment" in repr(db)


async def test_unreachable_server_error_hides_the_password() -> None:
    secret = "hunter2-not-a-real-one"
    dsn = f"postgresql://kling:{secret}@127.0.0.1:1/kling?sslmode=disable"
    with pytest.raises(DatabaseError) as caught:
        await Database.open(dsn, timeout=2.0)
    assert "127.0.0.1:1" in str(caught.value)
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None  # the driver's own exception is not chained in


async def test_wrong_password_error_hides_it(pg_dsn: str) -> None:
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right-password-123'")
        await migrate(admin)  # the schema's owner set it up; this role only reads its version
        await admin.execute(f"GRANT SELECT ON kling_schema_version TO {PASSWORD_ROLE}")
        secret = "wrong-password-456"
        dsn = pg_dsn.replace("postgres@", f"{PASSWORD_ROLE}:{secret}@")
        with pytest.raises(DatabaseError, match="password authentication failed") as caught:
            await Database.open(dsn)
        assert secret not in str(caught.value)
        assert "***" in str(caught.value)
        right = dsn.replace(secret, "right-password-123")
        async with await Database.open(right) as db:
            assert "right-password-123" not in repr(db)
    finally:
        await admin.execute(f"DROP OWNED BY {PASSWORD_ROLE}")
        await admin.execute(f"DROP ROLE IF EXISTS {PASSWORD_ROLE}")
        await admin.close()


def test_not_a_dsn_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="postgresql://"):
        asyncio.run(Database.open("batch.sqlite"))


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p@ss/w@h/db", "postgres://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?password=pw&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("host=h password='a b' user=u", "host=h password=*** user=u"),
        ("", "postgresql:// (PG* environment variables)"),
    ],
)
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_is_dsn() -> None:
    assert is_dsn("postgresql://h/db") and is_dsn("postgres://h/db")
    assert not is_dsn("batch.sqlite") and not is_dsn(None) and not is_dsn("pg.sqlite")


def test_without_a_server_the_tests_skip_or_in_ci_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KLING_PG_BINDIR", "")
    assert find_bindir() is None
    monkeypatch.setenv("KLING_PG_BINDIR", "/nonexistent")
    assert find_bindir() is None
    monkeypatch.delenv("KLING_PG_BINDIR")
    found = find_bindir()
    assert found is None or (found / "initdb").exists()
    with pytest.raises(pytest.skip.Exception, match="no server"):
        no_postgres("no server", required=False)
    with pytest.raises(pytest.fail.Exception, match="KLING_REQUIRE_POSTGRES=1 but no server"):
        no_postgres("no server", required=True)
