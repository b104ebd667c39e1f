"""What a batch needs to run in several workers over one PostgreSQL journal (issue #19).

``extend_many(requests, journal="postgresql://…", batch="name")``: every worker reads the same
requests; each request is handled by the worker that claims it (:meth:`SharedJournal.claim`),
and a worker whose input is done stays to take over what a dead worker left
(:meth:`SharedJournal.claim_orphans`) until no live worker holds unfinished requests. A worker
yields the outcomes of the requests it handled, and those already finished when it reached them
(``from_journal``); ``kling-async report`` shows the whole batch.
"""

from __future__ import annotations

import os

from .journal import Journal, JournalEntry, SharedJournal
from .postgres import is_dsn
from .requests import CreateRequest
from .serde import request_from_wire

__all__ = ["JournalArg", "check_journal", "open_journal", "poll_interval", "request_of"]

JournalArg = str | os.PathLike[str] | Journal | SharedJournal | None


def check_journal(journal: JournalArg, batch: str | None) -> None:
    """Refuse, before anything runs, a ``batch`` name without a PostgreSQL journal and a
    PostgreSQL journal without one: two batches must never mix their requests by accident."""
    shared = is_dsn(journal)
    if batch is not None and not shared:
        raise ValueError("batch= names a batch in a PostgreSQL journal (journal='postgresql://…')")
    if shared and batch is None:
        raise ValueError("a PostgreSQL journal needs a batch name: batch='…'")


async def open_journal(
    journal: JournalArg, batch: str | None
) -> tuple[Journal | SharedJournal | None, bool]:
    """The journal to use and whether the batch owns it (opened it, so closes it)."""
    if journal is None or isinstance(journal, Journal | SharedJournal):
        return journal, False
    if is_dsn(journal):
        assert isinstance(journal, str) and batch is not None
        return await SharedJournal.open(journal, batch=batch), True
    return await Journal.open(journal), True


def request_of(entry: JournalEntry, known: dict[str, CreateRequest]) -> CreateRequest:
    """The request of a journalled entry: as this worker read it, else as it was sent (a
    request of another worker's input, taken over)."""
    request = known.get(entry.key)
    if request is None:
        request = request_from_wire(entry.request["kind"], entry.request["body"])
        known[entry.key] = request
    return request


def poll_interval(journal: SharedJournal) -> float:
    """How often a worker with nothing to do looks for requests to take over (real seconds)."""
    return min(5.0, max(0.05, journal.lease / 4))
