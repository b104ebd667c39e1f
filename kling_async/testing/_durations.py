"""How long emulated tasks wait in the queue and run, in clock seconds."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Durations"]

DurationFn = Callable[[Mapping[str, Any]], tuple[float, float]]


class Durations:
    """``(queued, running)`` seconds for each new task, given its create body.

    ``Durations(queued=5.0, running=315.0)`` is fixed (about what a real extend takes);
    :meth:`per_task` asks a function; :meth:`random` draws from a seeded uniform spread. All
    values are seconds of the emulator's clock, so a ``ScaledClock`` or ``FakeClock`` shrinks them.
    """

    __slots__ = ("_fn",)

    def __init__(self, queued: float = 5.0, running: float = 315.0) -> None:
        fixed = _checked(queued, running)
        self._fn: DurationFn = lambda _body: fixed

    @classmethod
    def per_task(cls, fn: DurationFn) -> Durations:
        """Durations chosen by ``fn(body) -> (queued, running)`` for each create."""
        durations = cls()
        durations._fn = fn
        return durations

    @classmethod
    def random(
        cls,
        mean_running: float = 315.0,
        spread: float = 60.0,
        queued: float = 5.0,
        seed: int = 0,
    ) -> Durations:
        """Running time uniform in ``mean_running ± spread`` (never below 0), seeded."""
        rng = random.Random(seed)
        low = max(0.0, mean_running - spread)
        high = max(low, mean_running + spread)
        _checked(queued, low)
        return cls.per_task(lambda _body: (queued, rng.uniform(low, high)))

    def draw(self, body: Mapping[str, Any]) -> tuple[float, float]:
        """The ``(queued, running)`` seconds for one task."""
        queued, running = self._fn(body)
        return _checked(queued, running)


def _checked(queued: float, running: float) -> tuple[float, float]:
    if not (queued >= 0 and running >= 0):
        raise ValueError(f"durations must be >= 0, got queued={queued!r} running={running!r}")
    return float(queued), float(running)
