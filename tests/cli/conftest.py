"""What the ``kling-async`` tests share: running the CLI as a subprocess, and emulators.

Commands that need tasks to outlive one process run against an emulator in the test's event
loop (``remote``: its URL and keys passed through KLING_* variables, its scaled clock through
``--time-scale``/``--time-origin``); the rest use ``--emulator``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from kling_async import ScaledClock
from kling_async.journal import Journal, JournalEntry, JournalFormatError
from kling_async.testing import Durations, KlingEmulator, SeedVideo

REPO = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "kling_async.cli")
SCALE = 100.0


@attrs.frozen
class Run:
    code: int | None
    stdout: str
    stderr: str

    def objects(self) -> list[dict[str, Any]]:
        """stdout as JSON Lines (every line must parse)."""
        return [json.loads(line) for line in self.stdout.splitlines()]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects() if o["type"] == kind]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLING_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "160"
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env or cli_env(), timeout=timeout
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def arun_cli(*args: str, env: dict[str, str], timeout: float = 60) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Run(proc.returncode, out.decode(), err.decode())


@attrs.frozen
class Remote:
    """An emulator in this process, and how a CLI subprocess reaches it on the same clock."""

    emu: KlingEmulator
    env: dict[str, str]
    clock_flags: tuple[str, ...]

    def requests(self) -> int:
        return sum(self.emu.stats.requests.values())


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    origin = time.time()
    clock = ScaledClock(SCALE, start_time=origin)
    async with KlingEmulator(
        clock=clock,
        durations=Durations(queued=2, running=60),
        slot_limit=4,
        fail_when=lambda body: "risk control" if body.get("prompt") == "fail me" else None,
    ) as emu:
        creds = emu.client_kwargs("jwt")
        env = cli_env(
            KLING_BASE_URL=creds["base_url"],
            KLING_ACCESS_KEY=creds["access_key"],
            KLING_SECRET_KEY=creds["secret_key"],
        )
        yield Remote(emu, env, ("--time-scale", str(SCALE), "--time-origin", repr(origin)))


def write_jsonl(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def journal_entries(path: Path) -> list[JournalEntry]:
    """A journal another process writes: [] until it exists and has been set up (between the
    two, the file is an SQLite database without a journal's marks)."""
    try:
        return Journal.read(path) if path.exists() else []
    except JournalFormatError:
        return []


def exists(path: Path | str) -> bool:
    return Path(path).exists()


def sqlite_files(folder: Path) -> list[Path]:
    return list(folder.glob("*.sqlite"))


def seeded_rows(videos: Sequence[SeedVideo]) -> list[dict[str, Any]]:
    return [
        {"video_id": v.video_id, "task_id": v.task_id, "prompt": f"shot {i}"}
        for i, v in enumerate(videos)
    ]
