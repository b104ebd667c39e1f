"""How long tasks take, learned from the tasks that ended: a small sketch per kind and profile.

The poll cadence places polls where a task's end is likely. Where that is depends on the kind,
on the request fields that change run time (``mode``, ``duration``, ``model_name``) and on
Kling's load, so it is learned rather than fixed: every task that ends adds its duration
(``updated_at - created_at``, the server's own clock, so poll lag does not blur it) to the
sketch of its profile.

A sketch is a histogram over logarithmic bins (5 % wide, 0.5 s to about 11 hours: 200 counts,
a fixed 1.6 KiB whatever the number of tasks), whose counts decay by ``decay`` per observation,
so it follows a drift (a busy hour) within a few dozen tasks. It starts from a prior: three
pseudo-observations spread over the kind's built-in typical duration / 1.5 to x 1.5, which fade
over the first eight real observations. The model keeps at most ``max_profiles`` sketches
(least recently used dropped), remembers which profile each task it was told of belongs to
(:meth:`DurationModel.note`, bounded too), and can be saved to and restored from a plain dict
(a journal keeps it, so a resumed batch starts warm).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DurationModel", "DurationSketch", "profile_key"]

_LOW = 0.5  # seconds: the lower edge of bin 0
_RATIO = 1.05  # each bin is 5 % wider than the last
_BINS = 200  # up to 0.5 * 1.05**200 s, about 11 hours
_LOG_RATIO = math.log(_RATIO)
# Fields of a create request that change how long its task runs.
_PROFILE_FIELDS = ("mode", "duration", "model_name", "model")
_MAX_TASKS = 100_000  # task -> profile notes kept (tasks still running, in practice)
# A bin still counts as "recent" while its decayed count is at least this: a single
# observation stays for ~700 later ones at the default decay of 0.99.
_RECENT = 1e-3


def _bin(seconds: float) -> int:
    if seconds <= _LOW:
        return 0
    return min(_BINS - 1, int(math.log(seconds / _LOW) / _LOG_RATIO))


def _edge(index: float) -> float:
    return float(_LOW * _RATIO**index)


def profile_key(kind: str, fields: Mapping[str, Any] | None = None) -> str:
    """The sketch a task of ``kind`` created with ``fields`` is learned into, e.g.
    ``"text2video mode=pro duration=10"``; the kind alone without run-time fields."""
    if not fields:
        return kind
    parts = [kind]
    for name in _PROFILE_FIELDS:
        value = fields.get(name)
        if value is not None and value != "":
            parts.append(f"{name}={value}")
    return " ".join(parts)


class DurationSketch:
    """A decaying histogram of durations with quantile queries; see the module doc."""

    __slots__ = ("_counts", "_memo", "_prior", "_total", "decay", "observed")

    #: Real observations after which the prior no longer counts (it fades linearly until then).
    PRIOR_FADE = 8

    def __init__(self, prior: float | None = None, *, decay: float = 0.99) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay!r}")
        self.decay = decay
        self._counts = [0.0] * _BINS
        self._prior: dict[int, float] = {}
        self._total = 0.0
        # Quantiles asked since the last observation: every reschedule of every task asks the
        # same two, and a sketch changes only when a task ends.
        self._memo: dict[float, float | None] = {}
        #: Real observations so far (the prior's pseudo-observations not counted).
        self.observed = 0
        if prior is not None and math.isfinite(prior) and prior > 0:
            # A wide prior, flat on the log scale (typical / 1.5 to x 1.5): before anything
            # is learned the cadence polls a broad window instead of trusting one number.
            low, high = _bin(prior / 1.5), _bin(prior * 1.5)
            share = 3.0 / (high - low + 1)
            self._prior = {i: share for i in range(low, high + 1)}

    def add(self, seconds: float) -> None:
        """Learn one task's duration."""
        if not math.isfinite(seconds) or seconds < 0:
            return  # a server's odd timestamps must not poison the sketch
        if self.decay < 1.0:
            d = self.decay
            counts = self._counts
            for i in range(_BINS):
                counts[i] *= d
            self._total *= d
        self._counts[_bin(seconds)] += 1.0
        self._total += 1.0
        self.observed += 1
        self._memo.clear()

    @property
    def weight(self) -> float:
        """How many observations the sketch stands for (decayed; the prior's share included)."""
        return self._total + sum(self._prior.values()) * self._prior_share()

    def _prior_share(self) -> float:
        return max(0.0, 1.0 - self.observed / self.PRIOR_FADE)

    def _mass(self) -> list[float]:
        share = self._prior_share()
        if not share or not self._prior:
            return self._counts
        mass = list(self._counts)
        for i, c in self._prior.items():
            mass[i] += c * share
        return mass

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of durations (s); ``None`` when nothing is known.

        Within a bin the mass is taken as spread evenly on the log scale.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        if q in self._memo:
            return self._memo[q]
        value = self._memo[q] = self._quantile(q)
        return value

    def _quantile(self, q: float) -> float | None:
        mass = self._mass()
        total = sum(mass)
        if total <= 1e-12:
            return None
        target = q * total
        seen = 0.0
        for i, c in enumerate(mass):
            if c <= 0.0:
                continue
            if seen + c >= target:
                return _edge(i + (target - seen) / c)
            seen += c
        return _edge(_BINS)  # pragma: no cover - rounding at q == 1

    def longest(self) -> float | None:
        """The upper edge of the longest duration still weighing in the sketch (a bin whose
        decayed count is at least :data:`_RECENT`), ``None`` before any real observation: how
        long a task of this profile can run, as far as the recent tasks tell."""
        if not self.observed:
            return None
        counts = self._counts
        for i in range(_BINS - 1, -1, -1):
            if counts[i] >= _RECENT:
                return _edge(i + 1)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "observed": self.observed,
            "counts": {str(i): round(c, 6) for i, c in enumerate(self._counts) if c > 1e-9},
            "prior": {str(i): round(c, 6) for i, c in self._prior.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DurationSketch:
        """A sketch saved by :meth:`to_dict`; ``ValueError`` for anything malformed."""
        sketch = cls(decay=float(data.get("decay", 0.99)))
        sketch._counts = _bins_from(data.get("counts", {}))
        sketch._prior = {i: c for i, c in enumerate(_bins_from(data.get("prior", {}))) if c}
        sketch._total = sum(sketch._counts)
        observed = data.get("observed", 0)
        if not isinstance(observed, int) or isinstance(observed, bool) or observed < 0:
            raise ValueError(f"observed must be a count, got {observed!r}")
        sketch.observed = observed
        return sketch


def _bins_from(data: Any) -> list[float]:
    if not isinstance(data, Mapping):
        raise ValueError("bins must be a mapping of bin index to count")
    counts = [0.0] * _BINS
    for key, value in data.items():
        i, c = int(key), float(value)
        if not 0 <= i < _BINS or not math.isfinite(c) or c < 0:
            raise ValueError(f"bad bin {key!r}: {value!r}")
        counts[i] = c
    return counts


class DurationModel:
    """One :class:`DurationSketch` per profile (see :func:`profile_key`), priors per kind."""

    __slots__ = ("_priors", "_sketches", "_tasks", "decay", "max_profiles")

    def __init__(
        self,
        priors: Mapping[str, float] | None = None,
        *,
        decay: float = 0.99,
        max_profiles: int = 256,
    ) -> None:
        self.decay = decay
        self.max_profiles = max_profiles
        self._priors = dict(priors or {})
        self._sketches: collections.OrderedDict[str, DurationSketch] = collections.OrderedDict()
        self._tasks: collections.OrderedDict[str, str] = collections.OrderedDict()

    def note(self, task_id: str, profile: str) -> None:
        """Remember that ``task_id`` is of ``profile`` (told by the create path)."""
        self._tasks[task_id] = profile
        self._tasks.move_to_end(task_id)
        if len(self._tasks) > _MAX_TASKS:
            self._tasks.popitem(last=False)

    def profile_of(self, task_id: str, kind: str) -> str:
        """The profile noted for ``task_id``, else its kind's."""
        return self._tasks.get(task_id, kind)

    def forget(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    def sketch(self, profile: str, typical: float | None = None) -> DurationSketch:
        """The sketch of ``profile``; made on first use from what its kind taught, else from
        a prior around ``typical`` (or the kind's prior given to the model)."""
        sketch = self._sketches.get(profile)
        if sketch is None:
            kind = profile.split(" ", 1)[0]
            base = self._sketches.get(kind) if kind != profile else None
            if base is not None and base.observed:
                # A new profile of a known kind starts from what the kind taught (as a prior
                # that fades), not from the built-in typical duration.
                sketch = DurationSketch(decay=self.decay)
                typical = base.quantile(0.5)
                if typical is not None:
                    sketch = DurationSketch(typical, decay=self.decay)
            else:
                prior = self._priors.get(kind, typical)
                sketch = DurationSketch(prior, decay=self.decay)
            self._sketches[profile] = sketch
            while len(self._sketches) > self.max_profiles:
                self._sketches.popitem(last=False)
        else:
            self._sketches.move_to_end(profile)
        return sketch

    def observe(self, profile: str, seconds: float, typical: float | None = None) -> None:
        """Learn that a task of ``profile`` took ``seconds`` (also into its kind's sketch)."""
        self.sketch(profile, typical).add(seconds)
        kind = profile.split(" ", 1)[0]
        if kind != profile:
            self.sketch(kind, typical).add(seconds)

    def longest(self, profile: str, typical: float) -> float:
        """Seconds a task of ``profile`` can run: twice the longest recent one of the profile
        (or of its kind, for a profile not seen yet), and twice ``typical`` (the kind's prior)
        only before anything of the kind has ended. How long a slot of a create with a lost
        answer is kept: by then its task, if any, has ended."""
        kind = profile.split(" ", 1)[0]
        for key in (profile, kind):
            sketch = self._sketches.get(key)
            seen = sketch.longest() if sketch is not None else None
            if seen is not None:
                return 2.0 * seen
        return 2.0 * self._priors.get(kind, typical)

    def profiles(self) -> Iterable[str]:
        return list(self._sketches)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "sketches": {k: s.to_dict() for k, s in self._sketches.items()}}

    def load(self, data: Mapping[str, Any]) -> None:
        """Merge sketches saved by :meth:`to_dict` (a resumed batch starts warm). Malformed
        data raises ``ValueError`` and changes nothing."""
        if data.get("version") != 1 or not isinstance(data.get("sketches"), Mapping):
            raise ValueError("not a saved DurationModel")
        loaded = {str(k): DurationSketch.from_dict(v) for k, v in data["sketches"].items()}
        for key, sketch in loaded.items():
            self._sketches[key] = sketch
        while len(self._sketches) > self.max_profiles:
            self._sketches.popitem(last=False)
