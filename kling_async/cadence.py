"""When to poll a task next.

A task's status changes at most three times in minutes, so polling at a fixed short interval
wastes requests and a fixed long one adds lag. The cadence starts early (to see ``processing``),
grows geometrically towards a cap, tightens around the kind's expected finish, and grows again
once a task is overdue. Every interval scales with the kind's expected duration, so an image
(~30 s) is polled every couple of seconds near its end and an extend (~320 s) every ten.
"""

from __future__ import annotations

import attrs

__all__ = ["Cadence"]


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@attrs.frozen
class Cadence:
    """Poll intervals, as fractions of the kind's expected duration, within absolute bounds.

    For a video-extend (expected 320 s) the defaults give: first poll after 5 s, then 8, 13,
    20, 30 s apart (cap), 10 s apart from 240 s to 480 s, and back to growing after that:
    about 20 polls for a task that takes the expected time.
    """

    first: float = 1 / 64
    growth: float = 1.6
    cap: float = 1 / 10
    near: float = 1 / 32
    window: tuple[float, float] = (0.75, 1.5)
    min_interval: float = 1.0
    max_interval: float = 60.0
    callback_interval: float = 120.0

    def first_delay(self, expected: float) -> float:
        return _clamp(expected * self.first, self.min_interval, self.max_interval)

    def next_delay(self, expected: float, age: float, previous: float, covered: bool) -> float:
        """Seconds from now to the next poll of a task ``age`` seconds old.

        ``previous`` is the last interval used; ``covered`` means callbacks arrive for this
        task, so polling is only a safety net.
        """
        if covered:
            return self.callback_interval
        cap = _clamp(expected * self.cap, self.min_interval, self.max_interval)
        near = _clamp(expected * self.near, self.min_interval, cap)
        start, end = expected * self.window[0], expected * self.window[1]
        if start <= age < end:
            return near
        grown = _clamp(previous * self.growth, self.min_interval, cap)
        gap = start - age
        if gap > 0 and gap < grown + near:
            # Land on the start of the window where the task is likely to finish, rather than
            # overshooting into it or polling twice just before it.
            return max(gap, self.min_interval)
        return grown
