"""A small connection pool for one PostgreSQL database, named by a DSN that is never printed.

The DSN is a plain libpq URL (``postgresql://user:password@host:5432/db``) or empty: asyncpg
then reads the ``PG*`` environment variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
``PGPASSWORD``, ``PGDATABASE``...), as ``psql`` does. The pool is small (four connections at
most, opened as needed and kept while used): the work here is a few short statements per task,
never a transaction held across an HTTP request. No floor of open connections: the driver
restores a floor in a task of its own, printing a traceback per failed attempt while the
database is down; a statement reconnects anyway. It is created inside the running event loop
and closed by its owner.

A database restarting or failing over is routine: :meth:`Database.run` runs a statement and, if
the connection failed (:func:`connection_lost`), tries it again with backoff until the database
has been failing for the outage bound (``outage=``, or ``?kling_outage=SECONDS`` in the DSN;
60 s by default), then raises :class:`~kling_async.errors.DatabaseUnavailableError`. Callers run
there only what is safe to repeat or checks on a repeat whether the lost attempt took effect.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..clock import Clock, SystemClock
from ..errors import ConfigurationError, DatabaseError, DatabaseUnavailableError
from ..retry import OutagePolicy, OutageRetrier
from ._schema import migrate

if TYPE_CHECKING:
    import asyncpg

    from ._schema import Connection

__all__ = [
    "DEFAULT_OUTAGE",
    "Database",
    "connection_lost",
    "driver",
    "failures",
    "is_dsn",
    "redact_dsn",
    "take_options",
]

T = TypeVar("T")

#: Seconds a database may stay unreachable before the statements waiting for it give up.
DEFAULT_OUTAGE = 60.0
#: Seconds closing waits for a database that may be gone: leaving early only costs a lease.
_CLOSE_TIMEOUT = 5.0

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


def connection_lost(pg: ModuleType, error: BaseException) -> bool:
    """Whether ``error`` is the connection failing rather than the statement: the server is
    restarting, shutting down, failing over or out of connection slots, or cannot be reached.
    The statement then did not run, or ran and its answer was lost."""
    lost = (
        OSError,  # refused, reset, unreachable; TimeoutError (a connect that timed out) too
        asyncio.TimeoutError,
        pg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
        pg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
        pg.AdminShutdownError,  # 57P01
        pg.CrashShutdownError,  # 57P02
        pg.TooManyConnectionsError,  # 53300: every worker reconnecting at once
    )
    if isinstance(error, lost):
        return True
    if isinstance(error, pg.InternalClientError):
        # Seen when the server goes away under a statement ("cannot switch to state 12;
        # another operation is in progress"): the connection is broken, not the statement.
        return "another operation" in str(error)
    # A pooled connection closed under a statement: the driver names it only in words.
    return isinstance(error, pg.InterfaceError) and "connection is closed" in str(error)


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

    __slots__ = ("_closed", "_dsn", "_pool", "_retrier")

    def __init__(self, dsn: str, pool: asyncpg.Pool[Any], retrier: OutageRetrier) -> None:
        """Use :meth:`open`."""
        self._dsn = dsn
        self._pool = pool
        self._retrier = retrier
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str = "",
        *,
        min_size: int = 0,
        max_size: int = 4,
        timeout: float = 10.0,
        outage: float | None = None,
        clock: Clock | None = None,
    ) -> Database:
        """Connect to ``dsn`` (empty: the ``PG*`` environment variables) and bring the schema
        up to date (:func:`~kling_async.postgres.migrate`).

        ``outage``: seconds :meth:`run` waits out an unreachable database (default: the DSN's
        ``kling_outage``, else 60); ``clock`` paces those waits (default: the system's).
        Opening is not retried: a database that cannot be reached at the start is more often
        a wrong DSN than a restart.

        Raises :class:`~kling_async.errors.DatabaseError` if the server cannot be reached
        within ``timeout`` seconds, refuses the credentials, or holds a newer schema;
        :class:`~kling_async.errors.ConfigurationError` if the extra is not installed.
        """
        if not isinstance(dsn, str) or (dsn and not is_dsn(dsn)):
            raise ConfigurationError("a PostgreSQL DSN starts with postgresql:// or postgres://")
        dsn, options = take_options(dsn, ("outage",))
        bound = options.get("outage", DEFAULT_OUTAGE) if outage is None else outage
        if not bound >= 0:
            raise ConfigurationError(f"outage must be >= 0 seconds, got {bound!r}")
        pg = driver()
        retrier = OutageRetrier(
            OutagePolicy(bound=float(bound)),
            clock or SystemClock(),
            lambda error: connection_lost(pg, error),
        )
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
        return cls(dsn, pool, retrier)

    async def run(self, op: Callable[[Connection], Awaitable[T]], operation: str) -> T:
        """``op`` on a pooled connection; tried again while the connection fails, for as long
        as the outage bound allows (``op`` must be safe to repeat, or check on a repeat whether
        the attempt whose answer was lost took effect). Past the bound: a
        :class:`~kling_async.errors.DatabaseUnavailableError` naming ``operation``."""

        async def attempt() -> T:
            async with self.pool.acquire() as conn:
                return await op(conn)

        try:
            return await self._retrier(attempt, operation)
        except Exception as exc:
            if not connection_lost(driver(), exc):
                raise
            bound = self._retrier.policy.bound
            raise DatabaseUnavailableError(
                f"PostgreSQL at {self.where} unreachable for more than {bound:g}s "
                f"({operation}: {_scrubbed(exc, self._dsn)})",
                outage=bound,
            ) from None

    @property
    def outage(self) -> OutageRetrier:
        """The outage state shared by this database's statements (its policy, and since when
        it has been failing)."""
        return self._retrier

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
            gone: tuple[type[BaseException], ...] = (asyncio.TimeoutError, *failures(driver()))
            try:
                await asyncio.wait_for(self._pool.close(), _CLOSE_TIMEOUT)
            except gone:
                self._pool.terminate()  # the server is gone: nothing left to say goodbye to

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
