"""A small connection pool for one PostgreSQL database, named by a DSN that is never printed.

The DSN is a plain libpq URL (``postgresql://user:password@host:5432/db``) or empty: asyncpg
then reads the ``PG*`` environment variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
``PGPASSWORD``, ``PGDATABASE``...), as ``psql`` does. The pool is small (one connection kept,
four at most): the work here is a few short statements per task, never a transaction held
across an HTTP request. It is created inside the running event loop and closed by its owner.
"""

from __future__ import annotations

import asyncio
import math
import re
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, DatabaseError
from ._schema import migrate

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Database", "driver", "failures", "is_dsn", "redact_dsn", "take_options"]

_SCHEMES = ("postgresql://", "postgres://")
# The value of a ``password`` keyword: in a URL's query, or in a libpq "key=value" string.
_PASSWORD = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)")


def is_dsn(value: object) -> bool:
    """Whether ``value`` names a PostgreSQL database (a ``postgresql://`` or ``postgres://``
    URL) rather than, say, the path of an SQLite journal."""
    return isinstance(value, str) and value.startswith(_SCHEMES)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password (in the URL's user part or a ``password=`` parameter) replaced
    by ``***``: what messages and ``repr`` show. An empty DSN reads as the ``PG*`` variables."""
    if not dsn or dsn in _SCHEMES:
        return "postgresql:// (PG* environment variables)"
    text = dsn
    scheme, sep, rest = dsn.partition("://")
    if sep:
        # The user part ends at the last "@" before the path: a password may hold "@" or "/".
        path_at = rest.find("/", rest.rfind("@") + 1)
        authority = rest if path_at < 0 else rest[:path_at]
        at = authority.rfind("@")
        if at >= 0 and ":" in authority[:at]:
            user = authority[: authority.index(":")]
            rest = f"{user}:***@{rest[at + 1 :]}"
        text = f"{scheme}://{rest}"
    return _PASSWORD.sub(lambda m: m[1] + "***", text)


def take_options(dsn: str, names: tuple[str, ...]) -> tuple[str, dict[str, float]]:
    """``dsn`` without its query parameters ``kling_<name>`` (ours, not libpq's: the driver
    would hand them to the server as settings it does not know), and their values as seconds.

    So a plain DSN string (``coordinator="postgresql://...?kling_lease=5"``) can say what a
    keyword of the object would."""
    base, sep, query = dsn.partition("?")
    if not sep:
        return dsn, {}
    kept, found = [], {}
    for part in query.split("&"):
        key, _, value = part.partition("=")
        name = key.strip().lower().removeprefix("kling_")
        if key.strip().lower().startswith("kling_"):
            if name not in names:
                raise ConfigurationError(f"unknown DSN option kling_{name[:40]} (known: {names})")
            try:
                found[name] = float(value)
            except ValueError:
                found[name] = math.nan
            if not math.isfinite(found[name]):
                raise ConfigurationError(f"kling_{name} must be seconds, got {value[:20]!r}")
        elif part:
            kept.append(part)
    return base + ("?" + "&".join(kept) if kept else ""), found


def driver() -> ModuleType:
    """The ``asyncpg`` module, or a :class:`ConfigurationError` saying which extra to install."""
    try:
        import asyncpg
    except ImportError:
        raise ConfigurationError(
            "PostgreSQL needs the asyncpg driver: pip install 'kling-async[postgres]'"
        ) from None
    return asyncpg


def failures(pg: ModuleType) -> tuple[type[BaseException], ...]:
    """What the driver raises when the database refuses, fails, or the connection breaks."""
    return (pg.PostgresError, pg.InterfaceError, pg.InternalClientError, OSError)


def _scrubbed(exc: BaseException, dsn: str) -> str:
    """What went wrong, without anything of the DSN's password a driver might have echoed."""
    text = f"{type(exc).__name__}: {exc}"
    password = _password_of(dsn)
    if password and len(password) >= 3:
        text = text.replace(password, "***")
    return _PASSWORD.sub(lambda m: m[1] + "***", text)


def _password_of(dsn: str) -> str:
    redacted, original = redact_dsn(dsn), dsn
    if redacted == original:
        return ""
    _, _, rest = original.partition("://")
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        return rest[rest.index(":") + 1 : at]
    match = _PASSWORD.search(original)
    return match[2].strip("'") if match else ""


class Database:
    """One PostgreSQL database: a small pool, its schema migrated when opened.

    ::

        async with await Database.open("postgresql://kling@db/kling") as db:
            async with db.pool.acquire() as conn:
                ...

    ``repr`` and every error name the database with its password replaced by ``***``.
    """

    __slots__ = ("_closed", "_dsn", "_pool")

    def __init__(self, dsn: str, pool: asyncpg.Pool[Any]) -> None:
        """Use :meth:`open`."""
        self._dsn = dsn
        self._pool = pool
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str = "",
        *,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 10.0,
    ) -> Database:
        """Connect to ``dsn`` (empty: the ``PG*`` environment variables) and bring the schema
        up to date (:func:`~kling_async.postgres.migrate`).

        Raises :class:`~kling_async.errors.DatabaseError` if the server cannot be reached
        within ``timeout`` seconds, refuses the credentials, or holds a newer schema;
        :class:`~kling_async.errors.ConfigurationError` if the extra is not installed.
        """
        if not isinstance(dsn, str) or (dsn and not is_dsn(dsn)):
            raise ConfigurationError("a PostgreSQL DSN starts with postgresql:// or postgres://")
        pg = driver()
        where = redact_dsn(dsn)
        unreachable: tuple[type[BaseException], ...] = (asyncio.TimeoutError, *failures(pg))
        try:
            pool = await pg.create_pool(
                dsn or None,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                server_settings={"application_name": "kling_async"},
            )
        except unreachable as exc:
            raise DatabaseError(
                f"cannot connect to PostgreSQL at {where}: {_scrubbed(exc, dsn)}"
            ) from None
        try:
            async with pool.acquire() as conn:
                await migrate(conn, where=where)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, failures(pg)):
                raise DatabaseError(
                    f"PostgreSQL at {where}: schema migration failed: {_scrubbed(exc, dsn)}"
                ) from None
            raise
        return cls(dsn, pool)

    @property
    def pool(self) -> asyncpg.Pool[Any]:
        """The asyncpg pool: ``async with db.pool.acquire() as conn: ...``."""
        if self._closed:
            raise DatabaseError(f"PostgreSQL at {self.where}: used after close()")
        return self._pool

    @property
    def where(self) -> str:
        """The DSN with its password replaced by ``***``."""
        return redact_dsn(self._dsn)

    @property
    def dsn(self) -> str:
        """The DSN as given (with its password): for opening another pool, never for printing."""
        return self._dsn

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close the pool (waiting for connections in use to be given back); idempotent."""
        if not self._closed:
            self._closed = True
            await self._pool.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Database {self.where} {state}>"
