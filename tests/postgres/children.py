"""Starting and reading coordinated child processes (``coordinator_child.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from kling_async import ScaledClock

CHILD = Path(__file__).with_name("coordinator_child.py")
ROOT = Path(__file__).parents[2]


async def spawn(config: dict[str, Any], *, stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        json.dumps(config),
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def line(child: asyncio.subprocess.Process, timeout: float = 20.0) -> str:
    """The child's next line of output (fails if it ends first)."""
    assert child.stdout is not None
    text = await asyncio.wait_for(child.stdout.readline(), timeout)
    assert text, f"the child ended (exit {await child.wait()}) before printing"
    return text.decode().strip()


def clock_of(clock: ScaledClock) -> dict[str, float]:
    assert clock.origin is not None
    return {"scale": clock.scale, "origin": clock.origin}
