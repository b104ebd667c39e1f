"""Counting, per request, what a run of creates did on the emulated account.

Each request carries a unique prompt, which the emulator keeps in each task's body: that is
how a server task is matched to the request that paid for it.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import attrs

from kling_async import AmbiguousSubmitError
from kling_async.batch import Outcome
from kling_async.testing import KlingEmulator


@attrs.frozen
class Ledger:
    duplicated: int  # tasks beyond the first for one request
    resent: int  # creates the server handled for a request after its task existed
    unreported: int  # tasks the server created that the caller cannot reach
    misreported: int  # outcomes whose task belongs to another request

    @property
    def clean(self) -> bool:
        return self == Ledger(0, 0, 0, 0)


def ledger(
    emu: KlingEmulator,
    outcomes: Iterable[Outcome],
    *,
    running: Iterable[str] = (),
    kind: str = "video-extend",
) -> Ledger:
    outcomes = list(outcomes)
    tasks = {tid: rec for tid, rec in emu.tasks.items() if rec.kind == kind}
    by_prompt: collections.defaultdict[object, list[str]] = collections.defaultdict(list)
    for tid, rec in tasks.items():
        by_prompt[(rec.body or {}).get("prompt")].append(tid)
    duplicated = sum(len(ids) - 1 for ids in by_prompt.values())
    resent = 0
    paid: set[object] = set()
    for body, task_id in emu.stats.creates:
        prompt = body.get("prompt")
        if prompt in paid:
            resent += 1
        elif task_id is not None:
            paid.add(prompt)
    reachable = set(running)
    misreported = 0
    for o in outcomes:
        if o.task is not None:
            reachable.add(o.task.task_id)
            rec = tasks.get(o.task.task_id)
            if rec is None or (rec.body or {}).get("prompt") != getattr(o.request, "prompt", None):
                misreported += 1
        if isinstance(o.error, AmbiguousSubmitError):
            reachable.update(o.error.candidates)
    return Ledger(duplicated, resent, len(set(tasks) - reachable), misreported)
