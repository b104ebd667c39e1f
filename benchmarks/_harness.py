"""What every benchmark shares: a clock two processes agree on, the emulator in its own
process, CPU and memory probes, an event-loop lag ticker, percentiles and tables.

Linux only (CPU of the emulator process and RSS are read from ``/proc``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class SharedClock:
    """``kling_async.ScaledClock`` with an explicit origin, so that the client in this process
    and the emulator in another read the same scaled time.

    ``time.monotonic()`` is CLOCK_MONOTONIC, one clock for every process of the machine; both
    sides compute ``epoch0 + (monotonic() - mono0) * scale`` from the same two numbers.
    """

    __slots__ = ("epoch0", "mono0", "scale")

    def __init__(
        self, scale: float, mono0: float | None = None, epoch0: float | None = None
    ) -> None:
        self.scale = float(scale)
        self.mono0 = time.monotonic() if mono0 is None else mono0
        self.epoch0 = time.time() if epoch0 is None else epoch0

    def monotonic(self) -> float:
        return (time.monotonic() - self.mono0) * self.scale

    def time(self) -> float:
        return self.epoch0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def real_ms(self, clock_seconds: float) -> float:
        """Clock seconds as real milliseconds."""
        return clock_seconds / self.scale * 1000.0

    def __repr__(self) -> str:
        return f"SharedClock(scale={self.scale:g})"


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb() -> float:
    """Resident set size of this process, in MiB."""
    resident = int(Path("/proc/self/statm").read_text().split()[1])
    return resident * _PAGE / 2**20


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


class LoopLag:
    """A ticker that asks to wake every ``interval`` real seconds and records how late it
    woke (event-loop lag), sampling RSS every ``rss_every`` ticks."""

    def __init__(self, interval: float = 0.01, rss_every: int = 10) -> None:
        self.interval = interval
        self.rss_every = rss_every
        self.lags: list[float] = []
        self.peak_rss = rss_mb()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        n = 0
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - start - self.interval)
            n += 1
            if n % self.rss_every == 0:
                self.peak_rss = max(self.peak_rss, rss_mb())

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.peak_rss = max(self.peak_rss, rss_mb())
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def p(self, q: float) -> float:
        """The ``q``-th percentile of lag, in real milliseconds."""
        return percentile(self.lags, q) * 1000.0


class EmulatorProcess:
    """``KlingEmulator`` served by ``benchmarks/_emulator_proc.py`` in a child process.

    ``info`` holds its URL, keys and a seed video; :meth:`stop` ends it and returns its report
    (requests by route and status, task records, optionally the time of every GET per task).
    Tasks queue ``queued`` and run ``running`` clock seconds, each drawn uniformly within
    ``+-spread`` (a fraction) of that when ``spread`` is set.
    """

    def __init__(
        self,
        clock: SharedClock,
        *,
        slots: int | None = None,
        queued: float = 5.0,
        running: float = 315.0,
        spread: float = 0.0,
        webhook_secret: str | None = None,
        log_gets: bool = False,
    ) -> None:
        self.clock = clock
        self._report = Path(tempfile.mkstemp(prefix="kling-bench-", suffix=".json")[1])
        self._args = [
            str(HERE / "_emulator_proc.py"),
            f"--scale={clock.scale!r}",
            f"--mono0={clock.mono0!r}",
            f"--epoch0={clock.epoch0!r}",
            f"--queued={queued!r}",
            f"--running={running!r}",
            f"--spread={spread!r}",
            f"--report={self._report}",
        ]
        if slots is not None:
            self._args.append(f"--slots={slots}")
        if webhook_secret is not None:
            self._args.append(f"--webhook-secret={webhook_secret}")
        if log_gets:
            self._args.append("--log-gets")
        self._proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu(self) -> float:
        """CPU seconds the emulator process has used so far."""
        return proc_cpu(self.pid)

    async def __aenter__(self) -> EmulatorProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, *self._args, stdout=asyncio.subprocess.PIPE
        )
        assert self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited before it was ready")
        self.info = json.loads(line)
        return self

    async def stop(self) -> dict[str, Any]:
        """Stop the emulator and return its report."""
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        try:
            report: dict[str, Any] = json.loads(self._report.read_text() or "{}")
        finally:
            self._report.unlink(missing_ok=True)
        return report

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._report.unlink(missing_ok=True)


def requests_by(report: dict[str, Any], route: str, status: int | None = None) -> int:
    """How many requests the emulator answered on ``route`` (with ``status``, if given)."""
    return sum(
        n
        for method, r, s, n in report.get("requests", [])
        if r == route and (status is None or s == status)
    )


def refusals_1303(report: dict[str, Any]) -> int:
    """Creates refused for lack of a task slot: 1303 (HTTP 429). The benchmarks set no balance
    and no rate limit, so 1303 is the only 429 the emulator can give."""
    return requests_by(report, "create", 429)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine_note() -> str:
    """CPU count and model, Python and aiohttp versions, for the printed report."""
    import aiohttp

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model or 'unknown'}), Python {sys.version.split()[0]}, "
        f"aiohttp {aiohttp.__version__}"
    )
