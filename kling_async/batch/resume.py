"""What a resumed batch decides from its journal, before it sends anything (issue #12).

A journalled request is finished (reported as it was), created (its task is followed), never
sent (sent now), or sent with no task id known: then a task may exist, and it is looked up
again. Only an authoritative "not found" (official API, by ``external_task_id``) lets it be
sent again, or the caller's ``resend_ambiguous=True``; otherwise it is ambiguous once more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..claims import Lookup
from ..creates import Creator
from ..errors import AmbiguousSubmitError
from ..journal import JournalEntry
from ..models import Task, TaskStatus
from ..serde import loads, request_from_wire, structure_task

__all__ = ["journalled_task", "look_again", "mark_known", "may_exist"]

log = logging.getLogger("kling_async")


def may_exist(entry: JournalEntry) -> bool:
    """A journalled request sent with no task id known, and not refused: look before sending."""
    refused = entry.outcome in ("not_sent", "rejected")
    return entry.task_id is None and entry.sent_at is not None and not refused


def mark_known(creator: Creator, entries: Iterable[JournalEntry]) -> None:
    """Tell ``creator`` what the journal knows before any look-up runs: its task ids are never
    taken for a lost create, and each create that may own an unseen task is in doubt."""
    for entry in entries:
        if entry.task_id is not None:
            creator.remember(entry.task_id)
        elif may_exist(entry):
            prepared = request_from_wire(entry.request["kind"], entry.request["body"])
            creator.doubt(prepared, entry.key)


def journalled_task(entry: JournalEntry, kind: str) -> Task | None:
    """The task as the journal last saw it; a bare ``submitted`` one if only its id is known."""
    if entry.task_json is not None:
        data = loads(entry.task_json)
        return structure_task(data, data.get("kind", kind), root="$journal")
    if entry.task_id is not None:
        return Task(kind=kind, task_id=entry.task_id, task_status=TaskStatus.SUBMITTED)
    return None


async def look_again(
    creator: Creator, entry: JournalEntry, *, resend: bool
) -> Task | AmbiguousSubmitError | None:
    """Look up a journalled create that may exist (call holding its :meth:`Creator.turn`):
    the task found, the error to report it ambiguous again, or ``None``: send it."""
    assert entry.sent_at is not None
    prepared = request_from_wire(entry.request["kind"], entry.request["body"])
    found: Lookup = await creator.find_lost(prepared, entry.sent_at, ref=entry.key)
    if found.task is not None:
        return found.task
    if found.absent:  # it never happened
        return None
    if resend:  # the caller takes the risk
        log.warning("batch: re-sending ambiguous request %s (resend_ambiguous)", entry.key)
        return None
    return creator.ambiguous(prepared, entry.sent_at, found, entry.key)
