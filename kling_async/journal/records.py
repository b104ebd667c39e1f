"""What a journal speaks, whatever stores it: the records of one request, and the errors.

A storage backend (today :mod:`kling_async.journal.sqlite`) reads and writes these; the batch
and the command line use only them and the :class:`~kling_async.journal.sqlite.Journal` methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ..errors import KlingError

__all__ = [
    "OUTCOMES",
    "ClaimLostError",
    "Intent",
    "JournalClosedError",
    "JournalEntry",
    "JournalError",
    "JournalFormatError",
    "lineage_of",
]

#: The final outcomes :meth:`Journal.record_outcome` accepts.
OUTCOMES = frozenset({"succeed", "failed", "rejected", "timed_out", "ambiguous", "not_sent"})


class JournalError(KlingError):
    """The journal could not be opened, read or written.

    ``path`` is the journal's file and ``operation`` what failed (``"open"``, ``"read"`` or
    ``"write"``) where known; the message names both. A damaged file (a zeroed page, say) is
    one: the batch then sends nothing.
    """

    def __init__(
        self, message: str, *, path: str | None = None, operation: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.operation = operation


class JournalFormatError(JournalError):
    """The file is not a kling_async journal, or was written by a newer version."""


class ClaimLostError(JournalError):
    """Another worker of a shared batch holds this request now (this one's lease ran out):
    nothing was sent, and this worker leaves the request to it."""


class JournalClosedError(JournalError):
    """The journal was used after :meth:`Journal.close`."""


def _key(_: Any, attribute: attrs.Attribute[str], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _mapping(_: Any, attribute: attrs.Attribute[Mapping[str, Any]], value: Any) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{attribute.name} must be a mapping, got {type(value).__name__}")


@attrs.frozen
class Intent:
    """A request about to be sent: written before its POST so a crash cannot hide it."""

    #: The caller's stable id of the request within the batch (a line number, its
    #: ``external_task_id``...): the same request must get the same key on a re-run.
    key: str = attrs.field(validator=_key)
    #: The request as JSON (with its ``external_task_id`` when it has one).
    request: Mapping[str, Any] = attrs.field(validator=_mapping)
    #: When the POST was sent, if it already was (else see :meth:`Journal.record_sent`).
    sent_at: float | None = None


@attrs.frozen
class JournalEntry:
    """Everything the journal knows about one request."""

    key: str
    request: dict[str, Any]
    task_id: str | None
    created_at_ms: int | None
    status: str | None
    task_json: bytes | None
    outcome: str | None
    detail: dict[str, Any] | None
    intent_at: float
    updated_at: float
    #: When the POST was sent; ``None`` means it was never sent (so it cannot exist on the server).
    sent_at: float | None = None

    @property
    def state(self) -> Literal["intent", "created", "final"]:
        """``intent``: no task id yet and no outcome (the create may or may not have happened —
        see :attr:`sent_at`); ``created``: a task exists and is not finished; ``final``: an
        outcome was recorded."""
        if self.outcome is not None:
            return "final"
        if self.task_id is not None:
            return "created"
        return "intent"


def lineage_of(entries: list[JournalEntry]) -> list[tuple[str, str]]:
    """``(parent video id, child video id)`` for each succeeded entry, in their order.

    The child is ``detail["video_id"]``; the parent is ``detail["parent_video_id"]``, else
    the request's own ``video_id`` (an extend's parent). Entries without both are skipped.
    """
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        if entry.outcome != "succeed" or not entry.detail:
            continue
        child = entry.detail.get("video_id")
        parent = entry.detail.get("parent_video_id", entry.request.get("video_id"))
        if isinstance(child, str) and isinstance(parent, str):
            pairs.append((parent, child))
    return pairs
