"""``PostgresCoordinator``: the processes of one Kling account share slots, the learned limit
and callbacks through one PostgreSQL database.

``KlingClient(..., coordinator="postgresql://...")`` (or ``coordinator=PostgresCoordinator(...)``)
in every worker or replica. What they share is named by the account (a digest of the
credentials and base URL, never the key itself):

- **Slots.** A slot the gate hands out is a row of ``kling_slot_lease``, taken in a short
  transaction under an advisory lock of the account (count, compare, insert, commit — never open
  across a request to Kling). Its holder renews its rows every ``lease / 3`` seconds; a row not
  renewed for ``lease`` seconds (its process died) is deleted by whoever counts next. A process
  that gives slots back NOTIFYs, so waiters elsewhere try again at once (and every ``recheck``
  seconds anyway).
- **The learned limit** (``kling_account.slot_limit``): written when a process learns it (a 1303,
  a probe that passed), read by every count and by a process that starts.
- **Callbacks**, see :mod:`._fanout`.

Leases live on the database's clock, so machines' clocks are never compared. A create's wait for
a slot (``slot_timeout``) runs on the client's clock, as a wait for a slot of its own gate does.

An outage is waited out (:meth:`Database.run`): every statement is safe to repeat (a take whose
answer was lost finds its own lease row). Past the bound a take raises ``DatabaseUnavailableError``;
background writes give up with a warning, and the rows they leave run out by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..clock import Clock, SystemClock
from ..errors import ConfigurationError
from ..models import Task
from ..slots.coordination import Allowed, Lease
from ._connect import Database, is_dsn, redact_dsn, take_options
from ._fanout import Fanout
from ._ops import give_back_unused, write

if TYPE_CHECKING:
    from ._schema import Connection

__all__ = ["PostgresCoordinator"]

log = logging.getLogger("kling_async")

_LOCK_SPACE = 0x4B4C534C  # "KLSL": the first key of the accounts' advisory locks
_CLOSE_TIMEOUT = 5.0  # seconds closing tries to give back the slots of creates that made nothing

_COUNT = """
SELECT coalesce(sum(weight), 0) AS held,
       coalesce(sum(weight) FILTER (WHERE task_id IS NOT NULL AND holder <> $2), 0) AS others,
       count(DISTINCT holder) FILTER (WHERE holder <> $2) AS holders,
       array_agg(task_id) FILTER (WHERE task_id IS NOT NULL AND holder <> $2) AS others_tasks,
       (SELECT slot_limit FROM kling_account WHERE account = $1) AS stored
FROM kling_slot_lease WHERE account = $1
"""
_RENEW = """
INSERT INTO kling_slot_lease (lease, account, holder, weight, task_id, expires_at)
SELECT u.lease, $1, $2, u.weight, u.task_id, now() + make_interval(secs => $3)
FROM unnest($4::text[], $5::int[], $6::text[]) AS u(lease, weight, task_id)
ON CONFLICT (lease) DO UPDATE SET expires_at = EXCLUDED.expires_at, task_id = EXCLUDED.task_id
"""


class PostgresCoordinator:
    """Shares a client's slots, learned limit and callbacks with every process of its account.

    ``dsn``: a ``postgresql://`` URL, or empty for the ``PG*`` environment variables.
    ``account``: a name for the account, if not the one derived from the client's credentials.
    ``lease``: seconds a dead process's slots stay taken; ``recheck``: seconds between counts
    while a create waits (a NOTIFY usually comes first); ``replay``: seconds of callbacks read
    back after the LISTEN connection comes back; ``outage``: seconds (real ones) an unreachable
    database is waited out before a take raises
    :class:`~kling_async.errors.DatabaseUnavailableError` (default 60). One coordinator per
    client. The DSN may set them too
    (``?kling_lease=5&kling_recheck=0.5&kling_replay=30&kling_outage=60``), for a client given
    the DSN as a string; a keyword given here wins.
    """

    shared = True

    def __init__(
        self,
        dsn: str = "",
        *,
        account: str | None = None,
        lease: float | None = None,
        recheck: float | None = None,
        replay: float | None = None,
        outage: float | None = None,
    ) -> None:
        if not isinstance(dsn, str) or (dsn and not is_dsn(dsn)):
            raise ConfigurationError("a PostgreSQL DSN starts with postgresql:// or postgres://")
        dsn, options = take_options(dsn, ("lease", "recheck", "replay", "outage"))
        self._outage = options.get("outage") if outage is None else outage
        lease = options.get("lease", 30.0) if lease is None else lease
        recheck = options.get("recheck", 1.0) if recheck is None else recheck
        replay = options.get("replay", 30.0) if replay is None else replay
        for name, value in (("lease", lease), ("recheck", recheck), ("replay", replay)):
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
        self._dsn = dsn
        self.account = account
        self.lease = float(lease)
        self.recheck = float(recheck)
        self.holder = uuid.uuid4().hex  # this process, in the lease and callback rows
        self._db: Database | None = None
        self._starting: asyncio.Future[int | None] | None = None
        self._leases: dict[str, Lease] = {}  # held by this process, renewed by the heartbeat
        self._others = 0  # slots held by running tasks of other processes, at the last count
        self.sharers = 1  # processes holding slots of the account, this one included
        self._others_tasks: set[str] = set()  # their running tasks, at the last count
        self._ops: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._limits_unsent = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._freed: asyncio.Future[None] | None = None
        self._fanout = Fanout(self, replay=float(replay))
        self._clock: Clock = SystemClock()  # the client's, once attached
        self.closed = False

    def __repr__(self) -> str:
        return f"PostgresCoordinator({redact_dsn(self._dsn)!r}, lease={self.lease:g})"

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the coordinator is not connected: await start() first")
        return self._db

    @property
    def dsn(self) -> str:
        return self._dsn

    @property
    def channel(self) -> str:
        """The NOTIFY channel of the account."""
        return "kling_" + self._digest().hex()

    def _digest(self) -> bytes:
        if self.account is None:
            raise RuntimeError("the coordinator is not attached to an account")
        return hashlib.blake2b(self.account.encode(), digest_size=12, person=b"kling-chan").digest()

    # -- Coordinator --------------------------------------------------------------------------

    def attach(
        self, account: str, hint: Callable[[Task, bool], object], *, clock: Clock | None = None
    ) -> None:
        if self._fanout.hint is not None:
            raise ConfigurationError("a PostgresCoordinator serves one client: make one each")
        if self.account is None:
            self.account = account
        self._fanout.hint = hint
        if clock is not None:
            self._clock = clock

    def open(self) -> None:
        if self._starting is not None or self.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the loop yet: start() comes later
            return
        self._starting = loop.create_task(self._start(), name="kling_async coordinator start")
        self._starting.add_done_callback(self._started)

    def _started(self, starting: asyncio.Future[int | None]) -> None:
        if starting.cancelled() or starting.exception() is None:
            return
        # Said here once, whoever awaits it (nobody, after a watch() opened it); the next use
        # tries again.
        log.warning("coordinator: cannot connect: %s", starting.exception())
        if self._starting is starting:
            self._starting = None

    async def start(self) -> int | None:
        self.open()
        if self._starting is None:
            raise RuntimeError("the coordinator is closed")
        return await asyncio.shield(self._starting)

    async def _start(self) -> int | None:
        self._digest()
        db = await Database.open(self._dsn, outage=self._outage)
        try:
            stored = await db.run(
                lambda conn: conn.fetchval(
                    "SELECT slot_limit FROM kling_account WHERE account = $1", self.account
                ),
                "coordinator start",
            )
            self._db = db
            await self._fanout.start()
        except BaseException:
            self._db = None
            await db.close()
            raise
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeat(), name="kling_async lease heartbeat"),
            loop.create_task(self._apply_ops(), name="kling_async lease writes"),
        ]
        return None if stored is None else int(stored)

    async def take(self, weight: int, allowed: Allowed, timeout: float | None) -> Lease | None:
        await self.start()
        # The bound on the client's clock (slot_timeout's); counts between NOTIFYs on real time.
        deadline = None if timeout is None else asyncio.ensure_future(self._clock.sleep(timeout))
        lease = Lease(weight)  # one key for every try: a repeated take finds its own row
        try:
            while True:
                freed = self._freed_signal()
                if await self._try_take(lease, allowed):
                    return lease
                if deadline is not None and deadline.done():
                    return None
                wakes: set[asyncio.Future[Any]] = {freed}
                if deadline is not None:
                    wakes.add(deadline)
                await asyncio.wait(wakes, timeout=self.recheck, return_when="FIRST_COMPLETED")
        finally:
            if deadline is not None:
                deadline.cancel()

    async def _try_take(self, lease: Lease, allowed: Allowed) -> bool:
        tries = 0

        async def op(conn: Connection) -> bool:
            nonlocal tries
            tries += 1
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1,$2)", _LOCK_SPACE, self._lock())
                if tries > 1 and await conn.fetchval(
                    "SELECT 1 FROM kling_slot_lease WHERE lease = $1", lease.key
                ):
                    return True  # the try whose answer was lost took the slots
                await conn.execute(
                    "DELETE FROM kling_slot_lease WHERE account = $1 AND expires_at < now()",
                    self.account,
                )
                row = await conn.fetchrow(_COUNT, self.account, self.holder)
                assert row is not None  # an aggregate always has a row
                held = int(row["held"])
                self._counted(row)
                # A limit this process told and the database has not seen yet wins.
                unsent = self._limits_unsent or row["stored"] is None
                stored = None if unsent else int(row["stored"])
                limit = allowed(stored, self.running(self._own_running()))
                if held and held + lease.weight > limit:
                    return False
                await conn.execute(
                    "INSERT INTO kling_slot_lease (lease, account, holder, weight, expires_at) "
                    "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
                    lease.key,
                    self.account,
                    self.holder,
                    lease.weight,
                    self.lease,
                )
                return True

        if not await self.db.run(op, "slot take"):
            return False
        self._leases[lease.key] = lease
        return True

    def hold(self, weight: int) -> Lease:
        lease = Lease(weight)
        self._leases[lease.key] = lease
        self._ops.put_nowait(("renew", None))
        return lease

    def created(self, lease: Lease, task_id: str) -> None:
        lease.task_id = task_id
        self._ops.put_nowait(("task", lease))

    def release(self, lease: Lease) -> None:
        if self._leases.pop(lease.key, None) is not None:
            self._ops.put_nowait(("release", lease))

    def ended(self, task_id: str) -> None:
        if task_id in self._others_tasks:
            self._others_tasks.discard(task_id)
            self._ops.put_nowait(("ended", task_id))

    def running(self, own: int) -> int:
        return own + self._others

    def learned(self, limit: int) -> None:
        self._limits_unsent += 1
        self._ops.put_nowait(("limit", limit))

    def publish(self, task: Task, trusted: bool) -> None:
        self._fanout.publish(task, trusted)

    async def aclose(self) -> None:
        """Write what is pending, give back the slots of creates that made no task (those of
        running tasks stay counted until their lease runs out: they do hold the account's
        slots), stop listening and close the pool."""
        if self.closed:
            return
        self.closed = True
        starting, self._starting = self._starting, None
        if starting is None:
            return
        if not starting.done():
            starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        if self._db is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ops.join(), 5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._fanout.aclose()
        # Once, briefly: the database may be gone, and the rows run out by themselves.
        with contextlib.suppress(Exception):
            async with self.db.pool.acquire(timeout=_CLOSE_TIMEOUT) as conn:
                unused = give_back_unused(conn, self.holder, self.channel)
                await asyncio.wait_for(unused, _CLOSE_TIMEOUT)
        await self._db.close()

    # -- background ---------------------------------------------------------------------------

    def _lock(self) -> int:
        return int.from_bytes(self._digest()[:4], "big", signed=True)

    def _counted(self, row: Any) -> None:
        self._others = int(row["others"])
        self.sharers = 1 + int(row["holders"])
        self._others_tasks = set(row["others_tasks"] or ())

    def _own_running(self) -> int:
        return sum(lease.weight for lease in self._leases.values() if lease.task_id)

    def _freed_signal(self) -> asyncio.Future[None]:
        if self._freed is None or self._freed.done():
            self._freed = asyncio.get_running_loop().create_future()
        return self._freed

    def slots_freed(self) -> None:
        """Another process gave slots back (or we may have missed that it did): count again."""
        if self._freed is not None and not self._freed.done():
            self._freed.set_result(None)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            # In line with the releases: a renewal racing one would bring its row back.
            self._ops.put_nowait(("renew", None))
            try:
                await self._fanout.prune()
            except Exception as exc:
                log.warning("coordinator: pruning callbacks failed: %s", type(exc).__name__)

    async def _renew(self, conn: Connection) -> None:
        leases = list(self._leases.values())
        if leases:
            await conn.execute(
                _RENEW,
                self.account,
                self.holder,
                self.lease,
                [lease.key for lease in leases],
                [lease.weight for lease in leases],
                [lease.task_id for lease in leases],
            )
        row = await conn.fetchrow(_COUNT, self.account, self.holder)
        assert row is not None
        self._counted(row)

    async def _apply_ops(self) -> None:
        while True:
            op, value = await self._ops.get()
            try:
                # Safe to repeat (_ops): an outage is waited out; past it, our rows run out.
                await self.db.run(
                    functools.partial(self._apply, op=op, value=value), f"coordinator {op}"
                )
            except Exception as exc:
                log.warning("coordinator: %s not written: %s", op, exc)
            finally:
                if op == "limit":
                    self._limits_unsent -= 1
                self._ops.task_done()

    async def _apply(self, conn: Connection, op: str, value: Any) -> None:
        if op == "renew":
            await self._renew(conn)
            return
        assert self.account is not None  # attached before it ever starts
        await write(conn, op, value, account=self.account, channel=self.channel)
