"""Following tasks until they end: the one :class:`PollScheduler` of a client and its readers.

:mod:`.scheduler` keeps a heap of next-poll times for every tracked task (:mod:`.tracked`:
what it keeps per task); :mod:`.cadence` decides when a task is polled next, from the
:mod:`.durations` learned per kind and profile; :mod:`.watch` turns what the scheduler sees
into :class:`~kling_async.models.StatusChange` events for a caller; :mod:`.reads` is the read
side of the API (get, list, account) that the scheduler polls through.
"""

from __future__ import annotations

from .cadence import Cadence
from .durations import DurationModel, DurationSketch, profile_key
from .reads import COSTS_SPACING, DEFAULT_COSTS_WINDOW, TaskReader
from .scheduler import PollScheduler
from .tracked import Fetch, Listener
from .watch import TaskWatch

__all__ = [
    "COSTS_SPACING",
    "DEFAULT_COSTS_WINDOW",
    "Cadence",
    "DurationModel",
    "DurationSketch",
    "Fetch",
    "Listener",
    "PollScheduler",
    "TaskReader",
    "TaskWatch",
    "profile_key",
]
