"""One worker's handle on a batch of the shared journal (:mod:`.postgres`): its lease and
heartbeat, its turns of parent videos, leaving, and how each statement is run (waiting out an
outage, run to its end even if its caller is cancelled)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..clock import Clock
from ..postgres._connect import Database, driver, failures
from ._pg import give_turn, join, leave, renew, settled, take_turn
from .records import JournalClosedError, JournalError

if TYPE_CHECKING:
    from ..postgres._schema import Connection

__all__ = ["WorkerHandle"]

log = logging.getLogger("kling_async")

T = TypeVar("T")

_LEAVE_TIMEOUT = 5.0  # seconds closing tries to hand the claims back


class WorkerHandle:
    """What :class:`~kling_async.journal.SharedJournal` is made of below its records."""

    __slots__ = (
        "_batch", "_closed", "_db", "_given", "_heartbeat", "_lease", "_owns_db", "_running",
        "_time", "worker",
    )  # fmt: skip

    def __init__(self, db: Database, batch: str, lease: float, clock: Clock | None, owns_db: bool):
        self._db = db
        self._batch = batch
        self._lease = lease
        self._owns_db = owns_db
        self._time: Callable[[], float] = time.time if clock is None else clock.time
        self._closed = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._running: set[asyncio.Future[Any]] = set()
        # Keys this worker was handed as its own (claimed, taken over, its intents): what a
        # repeated take-over need not return again.
        self._given: set[str] = set()
        #: This worker's id: random, one per open journal.
        self.worker = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"

    @property
    def path(self) -> str:
        """The database (password hidden) and the batch: what messages name."""
        return f"{self._db.where} batch {self._batch!r}"

    @property
    def batch(self) -> str:
        return self._batch

    @property
    def lease(self) -> float:
        """Seconds this worker's claims outlive its last heartbeat."""
        return self._lease

    @property
    def closed(self) -> bool:
        return self._closed

    # --- turns of a parent video (relay) ---

    @contextlib.asynccontextmanager
    async def turn(self, parent: str) -> AsyncIterator[None]:
        """Hold the turn of parent video ``parent`` across the workers of the batch: on a relay
        a lost create's task is found by scanning the parent's children, so at most one create
        per parent may have an answer on its way, in any worker. Waits (looking every tenth of
        the lease, a second at most) while a live worker holds it; a dead one's turn comes back
        with its lease."""
        pause = min(1.0, max(0.05, self._lease / 10))
        while True:
            if await self._run(
                "write", lambda conn: take_turn(conn, self._batch, self.worker, parent)
            ):
                break
            await asyncio.sleep(pause)
        try:
            yield
        finally:
            # Handed back even if the holder was cancelled (a shielded write), so the others'
            # wait ends now rather than with this worker's lease; failing that (the database
            # gone past the bound: the batch is stopping), the lease ending frees it.
            try:
                await self._run(
                    "write", lambda conn: give_turn(conn, self._batch, self.worker, parent)
                )
            except Exception as exc:
                log.warning("journal %s: turn of %s not handed back: %s", self.path, parent, exc)

    # --- life cycle ---

    async def _join(self, conn: Connection) -> None:
        await join(conn, self._batch, self.worker, self._lease)

    async def _beat(self) -> None:
        """Push this worker's lease forward every third of it, for as long as it is open."""
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._db.run(
                    lambda conn: renew(conn, self._batch, self.worker, self._lease),
                    "lease renewal",
                )
            except Exception as exc:  # past the outage bound: the batch's own calls stop it
                log.warning("journal %s: lease not renewed: %s", self.path, exc)

    async def close(self) -> None:
        """Hand back this worker's claims (others may take its unfinished requests at once),
        leave the batch and close the pool it opened; idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        try:
            # Once, briefly: the database may be the reason for closing, and a lease ending
            # later hands the claims back all the same.
            with contextlib.suppress(Exception):
                async with self._db.pool.acquire(timeout=_LEAVE_TIMEOUT) as conn:
                    await asyncio.wait_for(
                        leave(conn, self._batch, self.worker), _LEAVE_TIMEOUT
                    )
        finally:
            if self._owns_db:
                await self._db.close()

    # --- internals ---

    def _check_usable(self) -> None:
        if self._closed:
            raise JournalClosedError(f"journal {self.path} is closed")

    def _run(self, operation: str, op: Callable[[Connection], Awaitable[T]]) -> Awaitable[T]:
        """``op`` on a pooled connection, run to its end even if the caller is cancelled (as
        with the SQLite journal: a cancelled ``record_created`` still records the paid task);
        :meth:`close` waits for it."""
        self._check_usable()
        task = asyncio.ensure_future(self._execute(operation, op))
        self._running.add(task)
        task.add_done_callback(settled)
        task.add_done_callback(self._running.discard)
        return asyncio.shield(task)

    async def _execute(self, operation: str, op: Callable[[Connection], Awaitable[T]]) -> T:
        """``op`` waits out an outage (:meth:`Database.run`: each ``op`` here is safe to
        repeat, or checks on a repeat); the driver's other failures become a
        :class:`JournalError` naming the database (never its password) and ``operation``."""
        pg = driver()
        try:
            return await self._db.run(op, f"journal {operation}")
        except failures(pg) as exc:
            raise JournalError(
                f"journal {self.path}: {operation} failed, nothing of it was written: "
                f"{type(exc).__name__}: {exc}",
                path=self.path,
                operation=operation,
            ) from exc
