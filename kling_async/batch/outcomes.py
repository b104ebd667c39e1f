"""What a batch reports: an :class:`Outcome` per request, its :class:`Progress`, a report."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from typing import Any, Literal

import attrs

from ..errors import APIError, KlingError
from ..models import Task
from ..requests import CreateRequest

__all__ = ["BatchReport", "Outcome", "OutcomeKind", "Progress"]

OutcomeKind = Literal["succeed", "failed", "rejected", "timed_out", "ambiguous", "not_sent"]


@attrs.frozen
class Outcome:
    """How one request of a batch ended.

    ``succeed``/``failed``: the task ended (``task`` has the result or ``task_status_msg``);
    ``rejected``: the API refused the create (``error``); ``timed_out``: we stopped waiting,
    the task (``task``) runs on; ``ambiguous``: the create may exist (``error`` is an
    :class:`AmbiguousSubmitError` with the request, parent ids, ``sent_at`` and candidates; a
    later run looks it up again, and re-sends it only after an authoritative "not found" or
    with ``resend_ambiguous=True``); ``not_sent``: never created (the balance ran out, or the
    request could not be sent) — a later run sends it.
    """

    key: str
    outcome: OutcomeKind
    request: CreateRequest
    task: Task | None = None
    error: KlingError | None = None
    from_journal: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "succeed"

    @property
    def message(self) -> str:
        if self.task is not None and self.task.task_status_msg:
            return self.task.task_status_msg
        return str(self.error) if self.error is not None else ""


@attrs.frozen
class Progress:
    """A snapshot for progress bars."""

    total: int
    waiting: int
    submitted: int
    processing: int
    succeed: int
    failed: int
    other: int
    slots_in_use: int
    slot_limit: int

    @property
    def done(self) -> int:
        return self.succeed + self.failed + self.other


@attrs.frozen
class BatchReport:
    """Counts by outcome, units spent, elapsed time, and what needs a look."""

    counts: dict[str, int]
    units: float
    elapsed: float
    failures: list[dict[str, Any]]
    not_sent: list[str]
    ambiguous: list[dict[str, Any]]
    timed_out: list[dict[str, Any]]

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[Outcome], elapsed: float) -> BatchReport:
        counts: collections.Counter[str] = collections.Counter()
        units = 0.0
        failures, not_sent, ambiguous, timed_out = [], [], [], []
        for o in outcomes:
            counts[o.outcome] += 1
            if o.task is not None and o.task.units_deducted:
                units += o.task.units_deducted
            row: dict[str, Any] = {"key": o.key, "kind": o.request.kind}
            if o.request.parent_video_id is not None:
                row["video_id"] = o.request.parent_video_id
            if o.task is not None:
                row["task_id"] = o.task.task_id
            if o.outcome in ("failed", "rejected"):
                row["message"] = o.message
                if isinstance(o.error, APIError):
                    row["code"] = o.error.code
                    row["request_id"] = o.error.request_id
                failures.append(row)
            elif o.outcome == "not_sent":
                not_sent.append(o.key)
            elif o.outcome == "ambiguous":
                # What a person needs to settle it: the request, its parent, when, candidates.
                row["external_task_id"] = getattr(o.error, "external_task_id", None)
                row["parent_task_id"] = getattr(o.error, "parent_task_id", None)
                row["sent_at"] = getattr(o.error, "sent_at", None)
                row["candidates"] = list(getattr(o.error, "candidates", ()))
                row["message"] = o.message
                ambiguous.append(row)
            elif o.outcome == "timed_out":
                timed_out.append(row)
        return cls(dict(counts), units, elapsed, failures, not_sent, ambiguous, timed_out)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (dicts, lists, numbers and strings)."""
        return attrs.asdict(self)

    def to_json(self, *, indent: int | None = None) -> str:
        """The report as a JSON document (what a script writes next to its results)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)
