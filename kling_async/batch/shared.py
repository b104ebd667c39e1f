"""What a batch needs to run in several workers over one PostgreSQL journal (issue #19).

``extend_many(requests, journal="postgresql://…", batch="name")``: every worker reads the same
requests; each request is handled by the worker that claims it (:meth:`SharedJournal.claim`),
and a worker whose input is done stays to take over what a dead worker left
(:meth:`SharedJournal.claim_orphans`) until no live worker holds unfinished requests. A worker
yields the outcomes of the requests it handled, and those already finished when it reached them
(``from_journal``); ``kling-async report`` shows the whole batch.
"""

from __future__ import annotations

import collections
import os
from collections.abc import AsyncIterable, Iterable, Sequence

from ..creates import Creator
from ..journal import Intent, Journal, JournalEntry, SharedJournal
from ..postgres import is_dsn
from ..requests import CreateRequest
from ..serde import request_from_wire, unstructure_request
from .inputs import RequestLike, as_request, request_key

__all__ = [
    "JournalArg",
    "check_journal",
    "intent_of",
    "open_journal",
    "poll_interval",
    "register",
    "request_of",
]

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


def intent_of(creator: Creator, key: str, request: CreateRequest) -> Intent:
    """The intent of ``request`` as this worker would send it (``external_task_id`` and all)."""
    prepared = creator.prepare(request)
    return Intent(key, {"kind": prepared.kind, "body": unstructure_request(prepared)})


async def register(
    journal: SharedJournal,
    creator: Creator,
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
) -> None:
    """Journal a list of requests up front, unclaimed, so the whole batch is there from the
    start (an async input is read as it is needed, and journalled as it is claimed). A bad
    request ends the list here; the pass proper raises its error at its place."""
    if not isinstance(requests, Sequence):
        return
    seen: collections.Counter[str] = collections.Counter()
    intents = []
    try:
        for item in requests:
            request = as_request(item)
            intents.append(intent_of(creator, request_key(request, seen), request))
    except Exception:  # reported by the pass that creates, at its place
        pass
    await journal.register(intents)


def request_of(entry: JournalEntry, known: dict[str, CreateRequest]) -> CreateRequest:
    """The request of a journalled entry: as this worker read it, else as it was sent (a
    request of another worker's input, taken over)."""
    request = known.get(entry.key)
    if request is None:
        request = request_from_wire(entry.request["kind"], entry.request["body"])
        known[entry.key] = request
    return request


def poll_interval(journal: SharedJournal) -> float:
    """How often a worker with nothing to do looks for requests to take over (real seconds):
    soon after a lease runs out, and about when the last worker ends (two cheap queries)."""
    return min(1.0, max(0.05, journal.lease / 10))
