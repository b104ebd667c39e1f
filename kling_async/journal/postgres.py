"""A batch journal in PostgreSQL, shared by every worker that names the same batch.

``extend_many(requests, journal="postgresql://…", batch="name")`` in several processes, on
several machines, drains one batch together. The records are those of the SQLite journal
(:mod:`.records`), one row per request in ``kling_batch_entry`` (schema:
:mod:`kling_async.postgres._schema`), and the rule is the same: the intent is committed before
the POST, the moment of sending too, the task id right after the answer. What sharing adds:

* **Claims.** A worker handles a request only while it holds its claim (:meth:`claim`, and
  :meth:`claim_orphans` with ``FOR UPDATE SKIP LOCKED`` for taking over). A claim is valid while
  its worker's lease is: one row per worker in ``kling_batch_worker`` whose ``lease_until`` a
  heartbeat pushes forward every third of the lease, on the database's clock (machines' clocks
  are never compared). A worker killed with ``kill -9`` stops renewing; once its lease is over
  the others take its requests over, and the batch's resume rules apply: a task id is watched,
  a create sent without an answer is looked up before anything is sent again.
* **A fenced send.** :meth:`record_sent` renews the worker's lease and checks its claim in one
  statement: a worker whose request was taken over meanwhile gets :class:`ClaimLostError` and
  sends nothing, and the taker cannot look the request up until a full lease after that send
  was recorded — by then the POST is long on its way, so the look-up finds its task.
* **Short statements** on a small pool: no transaction is held across an HTTP request.
* **An outage is a pause.** Every statement is run by :meth:`Database.run`: a connection that
  fails (the server restarting, failing over) is retried with backoff for up to ``outage``
  seconds of the database failing, then :class:`~kling_async.errors.DatabaseUnavailableError`
  is raised and the batch stops. Each statement is safe to repeat (upserts, ``ON CONFLICT DO
  NOTHING``, the same value set again) or checks on a repeat what the lost attempt did: the
  fenced send passes again only while the claim is still this worker's, and a repeated
  take-over returns what the lost attempt took. Leases run out during a long outage like
  during a pause of the process: the fences are what keep a request sent at most once.
* **One report per request.** :meth:`record_outcome` is fenced too: a worker whose request was
  taken over is refused (:class:`ClaimLostError`) and leaves the report to the taker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..clock import Clock
from ..postgres import Database
from ..postgres._connect import take_options
from . import _pg
from ._handle import WorkerHandle
from ._schema import json_text, unknown_key
from .records import OUTCOMES, Intent, JournalEntry, lineage_of

if TYPE_CHECKING:
    from ..postgres._schema import Connection

__all__ = ["SharedJournal"]

log = logging.getLogger("kling_async")

_OPTIONS = ("lease", "outage")  # what a journal's DSN may say: ?kling_lease=10&kling_outage=60


def _plain(dsn: str) -> str:
    """``dsn`` without the journal's options: a reader (``report``) is given the workers' DSN."""
    return take_options(dsn, _OPTIONS)[0]


def _check_batch(batch: object) -> str:
    if not isinstance(batch, str) or not batch.strip() or len(batch) > 200:
        raise ValueError(f"batch must be a non-empty name of at most 200 characters: {batch!r}")
    if not batch.isprintable():
        raise ValueError("batch must not contain control characters")
    return batch


class SharedJournal(WorkerHandle):
    """The journal of batch ``batch`` in a PostgreSQL database, one worker's handle on it.

    Open with ``await SharedJournal.open(dsn, batch="name")``; close it (or ``async with``) to
    hand back this worker's claims at once instead of a lease later. The ``record_*``, reading
    and ``close`` methods are those of :class:`~kling_async.journal.Journal`; each returns once
    its write is committed.
    """

    __slots__ = ()

    @classmethod
    async def open(
        cls,
        dsn: str | Database,
        *,
        batch: str,
        clock: Clock | None = None,
        lease: float | None = None,
        outage: float | None = None,
    ) -> SharedJournal:
        """Join batch ``batch`` in the database ``dsn`` (a DSN, empty for the ``PG*``
        variables, or an open :class:`~kling_async.postgres.Database`, left open on close).

        ``lease`` (seconds, default 30) is how long this worker's claims outlive its last
        heartbeat: how soon the others take over from a worker that died. ``clock`` stamps
        ``intent_at`` and ``updated_at`` (and is the clock of ``sent_at`` as the batch records
        it). ``outage``
        (seconds, real ones) is how long the database may stay unreachable before the calls
        waiting for it raise :class:`~kling_async.errors.DatabaseUnavailableError` (default
        60; an open database has its own). A DSN may say both (``?kling_lease=10&
        kling_outage=120``), for a worker given only the DSN; a keyword given here wins.
        """
        _check_batch(batch)
        options: dict[str, float] = {}
        if isinstance(dsn, str):
            dsn, options = take_options(dsn, _OPTIONS)
        lease = options.get("lease", 30.0) if lease is None else lease
        if not lease > 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease!r}")
        outage = options.get("outage") if outage is None else outage
        owns = not isinstance(dsn, Database)
        db = await Database.open(dsn, outage=outage) if isinstance(dsn, str) else dsn
        journal = cls(db, batch, float(lease), clock, owns)
        try:
            await journal._run("open", journal._join)
        except BaseException:
            if owns:
                await db.close()
            raise
        journal._heartbeat = asyncio.ensure_future(journal._beat())
        return journal

    @classmethod
    async def read(cls, dsn: str, batch: str) -> list[JournalEntry]:
        """Every entry of batch ``batch``, in insertion order, for a report: from any machine,
        while the batch runs; takes no claim."""
        _check_batch(batch)
        async with await Database.open(_plain(dsn)) as db, db.pool.acquire() as conn:
            return await _pg.select_entries(conn, batch, db.where)

    @classmethod
    async def batches(cls, dsn: str) -> list[str]:
        """The names of the batches in the database ``dsn``, oldest first."""
        async with await Database.open(_plain(dsn)) as db, db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT batch FROM kling_batch_entry GROUP BY batch ORDER BY min(seq)"
            )
        return [str(row["batch"]) for row in rows]

    # --- the journal's records ---

    async def record_intents(self, intents: Sequence[Intent]) -> None:
        """Record requests about to be sent (claimed by this worker); a key already in the
        batch is left as it is."""
        rows = list(intents)
        values = [(i.key, json_text(i.request, "Intent.request"), i.sent_at) for i in rows]
        if not rows:
            self._check_usable()
            return
        now = self._time()

        async def op(conn: Connection) -> None:
            await _pg.insert(conn, [(self._batch, *v, now, self.worker) for v in values])

        await self._run("write", op)
        self._given.update(i.key for i in rows)

    async def register(self, intents: Sequence[Intent]) -> None:
        """Record requests of the batch without claiming them (any worker may take them): the
        whole batch is then in the journal, for reports and for workers with nothing to do."""
        values = [(i.key, json_text(i.request, "Intent.request"), i.sent_at) for i in intents]
        now = self._time()

        async def op(conn: Connection) -> None:
            await _pg.insert(conn, [(self._batch, *v, now, None) for v in values])

        await self._run("write", op)

    async def record_sent(self, key: str, sent_at: float) -> None:
        """Note that the POST for ``key`` is about to be sent, clearing an earlier outcome;
        renews this worker's lease and takes (or keeps) the claim in the same statement.
        Raises :class:`ClaimLostError` if a live worker holds ``key``: do not send."""
        now = self._time()

        async def op(conn: Connection) -> None:
            args = (self._batch, self.worker, key, sent_at, now, self._lease)
            if not await _pg.sent(conn, *args):
                raise await _pg.refused(conn, self._batch, key, self.path)

        await self._run("write", op)

    async def record_created(self, key: str, task_id: str, created_at_ms: int) -> None:
        """Record the task the POST for ``key`` created; the same id again is a no-op, a
        different one raises :class:`JournalError` (it would lose a paid task)."""
        if not isinstance(task_id, str) or not task_id:
            raise ValueError(f"task_id must be a non-empty string, got {task_id!r}")
        now = self._time()

        async def op(conn: Connection) -> None:
            await _pg.created(conn, self._batch, key, task_id, created_at_ms, now)

        await self._run("write", op)

    async def record_status(self, key: str, status: str, task_json: bytes | None) -> None:
        """Record the last status seen for ``key``'s task and the task as JSON bytes."""
        await self._update(
            key,
            "status = $3, task_json = $4",
            status,
            None if task_json is None else bytes(task_json),
        )

    async def record_outcome(self, key: str, outcome: str, detail: Mapping[str, Any]) -> None:
        """Record how ``key`` ended (one of :data:`OUTCOMES`); a later call replaces it.
        Raises :class:`ClaimLostError` if another live worker holds ``key`` (it took the
        request over and reports it: this worker does not)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        text = json_text(detail, "detail")
        now = self._time()

        async def op(conn: Connection) -> None:
            args = (self._batch, self.worker, key, outcome, text, now, self.path)
            await _pg.finished(conn, *args)

        await self._run("write", op)

    async def _update(self, key: str, assignments: str, *values: Any) -> None:
        now = self._time()

        async def op(conn: Connection) -> None:
            done = await conn.fetchval(
                f"UPDATE kling_batch_entry SET {assignments}, updated_at = ${len(values) + 3}"
                " WHERE batch = $1 AND key = $2 RETURNING 1",
                self._batch, key, *values, now,
            )  # fmt: skip
            if done is None:
                raise unknown_key(key)

        await self._run("write", op)

    async def record_slot_limit(self, limit: int) -> None:
        """Remember the account's parallel-task limit the batch learned."""
        await self._set_meta("slot_limit", str(int(limit)))

    async def slot_limit(self) -> int | None:
        """The slot limit recorded by :meth:`record_slot_limit`, or ``None``."""
        value = await self._meta("slot_limit") or ""
        return int(value) if value.isdigit() and 1 <= int(value) <= 100_000 else None

    async def record_durations(self, model: Mapping[str, Any]) -> None:
        """Keep what the batch learned of how long tasks take (``DurationModel.to_dict()``)."""
        await self._set_meta("durations", json_text(model, "durations"))

    async def durations(self) -> dict[str, Any] | None:
        """What :meth:`record_durations` kept, or ``None`` (also for an unreadable value)."""
        text = await self._meta("durations")
        try:
            value = json.loads(text) if text is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def _set_meta(self, name: str, value: str) -> None:
        await self._run("write", lambda conn: _pg.set_meta(conn, self._batch, name, value))

    async def _meta(self, name: str) -> str | None:
        return await self._run("read", lambda conn: _pg.meta(conn, self._batch, name))

    async def entries(self) -> list[JournalEntry]:
        """Every entry of the batch (every worker's), in insertion order."""

        async def op(conn: Connection) -> list[JournalEntry]:
            return await _pg.select_entries(conn, self._batch, self.path)

        return await self._run("read", op)

    async def lineage(self) -> list[tuple[str, str]]:
        """``(parent video id, child video id)`` per succeeded request (see
        :func:`~kling_async.journal.records.lineage_of`)."""
        return lineage_of(await self.entries())

    # --- claims ---

    async def claim(self, key: str, request: Mapping[str, Any]) -> JournalEntry | None:
        """Claim ``key`` for this worker, recording ``request`` as its intent if the batch has
        none yet. Returns the entry — claimed, or finished (``succeed``, ``failed``,
        ``rejected``: nothing to claim) — or ``None`` while a live worker holds it."""
        text = json_text(request, "request")
        now = self._time()

        async def op(conn: Connection) -> JournalEntry | None:
            return await _pg.claim(conn, self._batch, self.worker, key, text, now, self.path)

        entry = await self._run("write", op)
        if entry is not None:
            self._given.add(key)
        return entry

    async def claim_orphans(self, limit: int = 100) -> list[JournalEntry]:
        """Take over up to ``limit`` unfinished requests nobody live holds (their worker died,
        or left them): they are this worker's now, in insertion order."""

        tries = 0

        async def op(conn: Connection) -> list[JournalEntry]:
            nonlocal tries
            tries += 1
            # Again after a lost answer: what that attempt took is this worker's, unseen.
            known = sorted(self._given) if tries > 1 else None
            return await _pg.claim_orphans(
                conn, self._batch, self.worker, limit, self.path, known_own=known
            )

        taken = await self._run("write", op)
        self._given.update(entry.key for entry in taken)
        return taken

    async def held_elsewhere(self) -> int:
        """How many unfinished requests other live workers hold (one of them may die: a worker
        with nothing left to do stays while this is not 0, to take over)."""

        async def op(conn: Connection) -> int:
            return await _pg.held_elsewhere(conn, self._batch, self.worker)

        return await self._run("read", op)

    async def __aenter__(self) -> SharedJournal:
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
        return f"<SharedJournal {self.path} worker {self.worker} {state}>"
