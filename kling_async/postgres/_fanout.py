"""Callback fan-out: a callback received by any process wakes the waiters of every process.

Each hint a process's receiver gives its poll scheduler is published: a row of
``kling_callback`` (the task as the callback gave it, and whether its signature was verified)
and a ``NOTIFY`` on the account's channel naming it, in one statement. Every process LISTENs on
one dedicated connection; told of a row another process wrote, it reads it and hands the task
to its own scheduler as a hint (``relayed``: not published again), trusted as far as the
receiver that took it could verify it — an unsigned callback costs a confirming poll in every
process that follows the task, as it does in one. The database is part of the deployment, as
trusted as the processes themselves.

The LISTEN connection is checked every few seconds; when it drops it is opened again, and the
rows written meanwhile (since the last contact, with a margin) are read back, so nothing
published while this process was deaf is missed. Rows older than ``replay`` seconds are pruned.
A ``NOTIFY`` of ``s`` on the same channel says that slots were given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..errors import KlingError
from ..kinds import kind_named
from ..models import Task
from ..serde import structure_task, task_to_json
from ._connect import Database, driver

__all__ = ["Fanout", "Owner"]

log = logging.getLogger("kling_async")

_MAX_TASK_JSON = 256 * 1024  # a callback body is a few kB; a bigger row is not read back
_KEEPALIVE = 2.0  # seconds between checks of the LISTEN connection
_PUBLISH = """
WITH row AS (
    INSERT INTO kling_callback (account, origin, task_json, trusted) VALUES ($1, $2, $3, $4)
    RETURNING id
)
SELECT pg_notify($5, 'c:' || row.id || ':' || $2) FROM row
"""


def _resolve(future: asyncio.Future[None], *_: object) -> None:
    if not future.done():
        future.set_result(None)


class Owner(Protocol):
    """What the fan-out needs of its coordinator."""

    account: str | None
    holder: str

    @property
    def dsn(self) -> str: ...

    @property
    def db(self) -> Database: ...

    @property
    def channel(self) -> str: ...

    async def start(self) -> int | None: ...

    def slots_freed(self) -> None: ...


class Fanout:
    """The LISTEN side and the publishing side of one coordinator's callbacks."""

    def __init__(self, owner: Owner, *, replay: float) -> None:
        self._owner = owner
        self.replay = replay
        self.hint: Callable[[Task, bool], object] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.connection: Any = None  # the LISTEN connection (tests end it from the server)
        self.reconnect_delay = 0.05  # seconds before the first attempt again, doubling to 5
        self.reconnects = 0
        self.replayed = 0  # callbacks read back after a reconnect

    async def start(self) -> None:
        """Listen; return once the first LISTEN is in place."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._listening = asyncio.ensure_future(self._listen(ready))
        done, _ = await asyncio.wait({ready, self._listening}, return_when="FIRST_COMPLETED")
        if ready not in done:
            self._listening.result()  # raises what stopped it

    def publish(self, task: Task, trusted: bool) -> None:
        self._spawn(self._publish(task, trusted))

    async def _publish(self, task: Task, trusted: bool) -> None:
        owner = self._owner
        try:
            await owner.start()
            async with owner.db.pool.acquire() as conn:
                await conn.execute(
                    _PUBLISH,
                    owner.account,
                    owner.holder,
                    task_to_json(task).decode(),
                    trusted,
                    owner.channel,
                )
        except Exception as exc:  # the poll cadence still covers the task everywhere
            log.warning("coordinator: publishing a callback failed: %s", type(exc).__name__)

    async def prune(self) -> None:
        owner = self._owner
        async with owner.db.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM kling_callback WHERE account = $1 "
                "AND at < now() - make_interval(secs => $2)",
                owner.account,
                self.replay,
            )

    async def aclose(self) -> None:
        if self._pending:  # callbacks received just before closing still reach the others
            await asyncio.wait(self._pending, timeout=2.0)
        tasks = [*self._pending]
        if self._listening is not None:
            tasks.append(self._listening)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- listening ----------------------------------------------------------------------------

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        owner = self._owner
        pg = driver()
        since: datetime | None = None  # the database's time at the last contact
        failures = 0
        while True:
            conn = None
            try:
                conn = await pg.connect(owner.dsn or None, timeout=10.0)
                lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                conn.add_termination_listener(functools.partial(_resolve, lost))
                await conn.add_listener(owner.channel, self._notified)
                self.connection = conn
                now = await conn.fetchval("SELECT now()")
                # What was published while nobody listened here (a margin for late commits).
                await self._replay(now - timedelta(seconds=self.replay) if since is None else
                                   since - timedelta(seconds=2))  # fmt: skip
                since = now
                owner.slots_freed()  # a NOTIFY of freed slots may have been missed too
                if not ready.done():
                    ready.set_result(None)
                failures = 0
                while not lost.done():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(lost), _KEEPALIVE)
                    if not lost.done():
                        since = await asyncio.wait_for(conn.fetchval("SELECT now()"), 10.0)
                log.info("coordinator: the LISTEN connection was closed; opening it again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not ready.done():
                    raise
                log.warning("coordinator: the LISTEN connection failed: %s", type(exc).__name__)
            finally:
                self.connection = None
                if conn is not None:
                    conn.terminate()
            failures += 1
            self.reconnects += 1
            await asyncio.sleep(min(5.0, self.reconnect_delay * 2 ** (failures - 1)))

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == "s":
            self._owner.slots_freed()
            return
        kind, _, rest = payload.partition(":")
        row_id, _, origin = rest.partition(":")
        if kind == "c" and origin != self._owner.holder and row_id.isdigit():
            self._spawn(self._read(int(row_id)))

    async def _read(self, row_id: int) -> None:
        try:
            row = await self._owner.db.run(
                lambda conn: conn.fetchrow(
                    "SELECT task_json, trusted FROM kling_callback WHERE id = $1", row_id
                ),
                "reading a callback",
            )
        except Exception as exc:
            log.warning("coordinator: reading a callback failed: %s", type(exc).__name__)
            return
        if row is not None:
            self._deliver(row["task_json"], row["trusted"])

    async def _replay(self, since: datetime) -> None:
        owner = self._owner
        rows = await self.connection.fetch(
            "SELECT task_json, trusted FROM kling_callback "
            "WHERE account = $1 AND origin <> $2 AND at >= $3 ORDER BY id",
            owner.account,
            owner.holder,
            since,
        )
        for row in rows:
            self.replayed += 1
            self._deliver(row["task_json"], row["trusted"])

    def _deliver(self, text: str, trusted: bool) -> None:
        if self.hint is None or len(text) > _MAX_TASK_JSON:
            return
        try:
            data = json.loads(text)
            kind = kind_named(str(data.get("kind"))).name
            task = structure_task(data, kind, root="kling_callback.task_json")
        except (ValueError, AttributeError, KlingError) as exc:
            log.warning("coordinator: a published callback could not be read: %s", exc)
            return
        self.hint(task, bool(trusted))
