"""How long emulated tasks wait in the queue and run, in clock seconds."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from kling_async.testing._kinds import KINDS

__all__ = ["Durations"]

DurationFn = Callable[[Mapping[str, Any]], tuple[float, float]]
_KindFn = Callable[[str, Mapping[str, Any]], tuple[float, float]]

TYPICAL_QUEUED = 5.0


class Durations:
    """``(queued, running)`` seconds for each new task, given its kind and create body.

    ``Durations(queued=5.0, running=315.0)`` is fixed for every kind (about what a real extend
    takes); :meth:`per_task` asks a function of the body; :meth:`random` draws from a seeded
    uniform spread; :meth:`per_kind` picks one of those by kind; :meth:`typical` (the emulator's
    default) gives each kind its typical run time from kling-api.md 8.11 (extend: 5 + 315 s,
    text2video 319 s, image2video 164 s, lip-sync 455 s, images 32 s, try-on 19 s in all). All
    values are seconds of the emulator's clock, so a ``ScaledClock`` or ``FakeClock`` shrinks them.
    """

    __slots__ = ("_fn",)

    def __init__(self, queued: float = 5.0, running: float = 315.0) -> None:
        fixed = _checked(queued, running)
        self._fn: _KindFn = lambda _kind, _body: fixed

    @classmethod
    def per_task(cls, fn: DurationFn) -> Durations:
        """Durations chosen by ``fn(body) -> (queued, running)`` for each create."""
        return cls._of(lambda _kind, body: fn(body))

    @classmethod
    def per_kind(
        cls, table: Mapping[str, Durations], default: Durations | None = None
    ) -> Durations:
        """``table[kind]`` for the kinds it names (e.g. ``"image-generation"``), ``default``
        (else :meth:`typical`) for the others."""
        chosen = dict(table)
        fallback = default if default is not None else cls.typical()
        return cls._of(lambda kind, body: chosen.get(kind, fallback).draw(body, kind))

    @classmethod
    def typical(cls) -> Durations:
        """Each kind's typical total time (kling-api.md 8.11), 5 s of it queued."""
        totals = {kind.name: kind.typical_seconds for kind in KINDS}

        def typical(kind: str, _body: Mapping[str, Any]) -> tuple[float, float]:
            total = totals.get(kind, TYPICAL_QUEUED + 315.0)
            return TYPICAL_QUEUED, max(0.0, total - TYPICAL_QUEUED)

        return cls._of(typical)

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

    def draw(self, body: Mapping[str, Any], kind: str = "video-extend") -> tuple[float, float]:
        """The ``(queued, running)`` seconds for one task of ``kind``."""
        queued, running = self._fn(kind, body)
        return _checked(queued, running)

    @classmethod
    def _of(cls, fn: _KindFn) -> Durations:
        durations = cls()
        durations._fn = fn
        return durations


def _checked(queued: float, running: float) -> tuple[float, float]:
    if not (queued >= 0 and running >= 0):
        raise ValueError(f"durations must be >= 0, got queued={queued!r} running={running!r}")
    return float(queued), float(running)
