"""When to poll a task next: where its end is likely, as learned from the tasks that ended.

A task's status changes at most three times in minutes, so polling at a fixed short interval
wastes requests and a fixed long one adds lag. The cadence asks the task's
:class:`~kling_async.polling.DurationSketch` for the window in which tasks like it end (the
0.5 % and 99.5 % quantiles, widened while few tasks have been seen), and:

* polls **sparsely before the window**: once, at a quarter of the window's start (for a window
  starting at 240 s: at 60 s), which sees ``processing`` and early failures;
* polls **densely inside it**: each poll ``lag`` (4.2 %) of the task's age after the last, so a
  task's end is seen within 4.2 % of its duration — about ten polls in all for a 320-s extend
  whose durations spread +-25 %;
* polls **less and less once the task is overdue** (past the window), growing by ``growth`` up
  to ``max_interval``.

Until the first task of a profile has ended, the window is the prior's guess, and the spacing
in and past it is ``cold_lag`` (12 %) of the age instead: one wrong guess (a 900-s task of a
kind typed at 320 s) would otherwise cost some forty polls per task of the first round.

Before anything is learned the sketch is a broad prior around the kind's typical duration and
the gaps before its window grow gently (x1.5 from ``start / 32``), so the first tasks of a
profile are found even where the prior is far off. Tasks covered by callbacks are polled
only every ``callback_interval`` (a safety net). The scheduler's shared budget still bounds
how often anything is polled.
"""

from __future__ import annotations

import math

import attrs

from .durations import DurationSketch

__all__ = ["Cadence"]


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@attrs.frozen
class Cadence:
    """Poll placement; see the module doc. All values are seconds or fractions."""

    #: Dense polls inside the window are this fraction of the task's age apart.
    lag: float = 0.042
    #: The quantiles of learned durations that bound the dense window.
    coverage: tuple[float, float] = (0.005, 0.995)
    #: Widening of the window while few tasks are known: ``margin / sqrt(tasks seen)``.
    margin: float = 0.25
    #: How many sparse polls before the window, each 4x later than the one before.
    early_polls: int = 1
    #: Until the first task of a profile ends, its window is only the prior's guess (a 900-s
    #: task of a kind typed at 320 s crosses all of it): polls in and past it are this fraction
    #: of the age apart, so a wrong guess costs a dozen polls per task, not forty.
    cold_lag: float = 0.12
    #: Growth of the interval once a task is past the window.
    growth: float = 1.5
    min_interval: float = 1.0
    max_interval: float = 60.0
    callback_interval: float = 120.0

    def window(self, sketch: DurationSketch) -> tuple[float, float] | None:
        """Ages (s) between which tasks of this sketch end, or ``None`` if nothing is known."""
        low = sketch.quantile(self.coverage[0])
        high = sketch.quantile(self.coverage[1])
        if low is None or high is None:
            return None
        # With few observations the extreme quantiles are close to the extreme samples: widen
        # by a margin that shrinks as 1/sqrt(n), so the first tasks outside them are not missed.
        margin = self.margin / math.sqrt(max(1.0, sketch.weight))
        return low * (1 - margin), high * (1 + margin)

    def next_delay(
        self, sketch: DurationSketch, age: float, previous: float, covered: bool
    ) -> float:
        """Seconds from now to the next poll of a task ``age`` seconds old.

        ``previous`` is the last interval used; ``covered`` means callbacks arrive for this
        task, so polling is only a safety net.
        """
        if covered:
            return self.callback_interval
        window = self.window(sketch)
        if window is None:
            return _clamp(previous * self.growth, self.min_interval, self.max_interval)
        start, end = window
        if age < start:
            if sketch.observed < sketch.PRIOR_FADE:
                # Nothing learned yet: the prior may be far off (a 40-s task of a kind typed
                # at 320 s), so the gaps before the window grow gently from start / 32 rather
                # than 4x at a time, landing on the window's start.
                step = previous * self.growth if previous else start / 32
                step = _clamp(step, self.min_interval, self.max_interval)
                return min(step, max(self.min_interval, start - age))
            # The next of the sparse early polls (start / 4**k), else the window's start.
            for k in range(self.early_polls, 0, -1):
                at = start / 4.0**k
                if at > age + self.min_interval / 2:
                    return max(self.min_interval, at - age)
            return max(self.min_interval, start - age)
        cold = sketch.observed == 0
        if age < end:
            return max(self.min_interval, age * (self.cold_lag if cold else self.lag))
        # Overdue: grow from the interval in force, never below the dense spacing; with nothing
        # learned, up to the cold spacing too (the guess was wrong, and by how much is unknown).
        base = max(previous, age * self.lag, self.min_interval)
        ceiling = max(self.max_interval, age * self.cold_lag) if cold else self.max_interval
        return _clamp(base * self.growth, self.min_interval, ceiling)

    def first_delay(self, sketch: DurationSketch, age: float = 0.0) -> float:
        """Seconds to the first poll of a task just created (``age`` seconds ago)."""
        return self.next_delay(sketch, age, 0.0, False)
