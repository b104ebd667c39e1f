"""How ``kling-async`` writes: rich text for people, JSON Lines for scripts (``--json``).

With ``--json`` stdout carries only JSON objects, one per line, each with a ``type``; messages
for people go to stderr either way. Live displays (progress bars, status lines) appear only
when stdout is a terminal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from ..kinds import kind_named
from ..models import StatusChange, Task, TaskStatus
from ..serde import task_to_json

__all__ = ["STATUS_STYLE", "Output", "change_json", "makes_images", "status_text", "task_json"]

STATUS_STYLE = {
    TaskStatus.SUBMITTED: "cyan",
    TaskStatus.PROCESSING: "yellow",
    TaskStatus.SUCCEED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.UNKNOWN: "magenta",
}


class Output:
    """stdout and stderr consoles, and whether to speak JSON."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        # markup=False: prompts and server messages may contain [brackets].
        self.console = Console(file=sys.stdout, markup=False, highlight=False)
        self.err = Console(file=sys.stderr, markup=False, highlight=False)

    @property
    def live(self) -> bool:
        """Whether to draw live displays: stdout is a terminal and not in JSON mode."""
        return not self.json and self.console.is_terminal

    def emit(self, type_: str, /, **fields: Any) -> None:
        """One JSON object on its own line of stdout (``--json`` mode only)."""
        if self.json:
            line = json.dumps({"type": type_, **fields}, ensure_ascii=False, default=str)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def print(self, *items: Any) -> None:
        """Tables and text for people on stdout (not in JSON mode)."""
        if not self.json:
            self.console.print(*items)

    def line(self, text: str | Text) -> None:
        """One log line for people on stdout, never wrapped (not in JSON mode)."""
        if not self.json:
            self.console.print(text, soft_wrap=True)

    def note(self, message: str | Text) -> None:
        """A remark for people, on stderr."""
        self.err.print(message, soft_wrap=True)

    def error(self, message: str, /, *, exit_code: int, **fields: Any) -> None:
        """``error: message`` on stderr, and an ``error`` object on stdout in JSON mode."""
        self.err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
        self.emit("error", message=message, exit_code=exit_code, **fields)


def task_json(task: Task) -> dict[str, Any]:
    """A task as plain JSON values, wire field names plus ``kind``."""
    data: dict[str, Any] = json.loads(task_to_json(task))
    return data


def change_json(change: StatusChange) -> dict[str, Any]:
    return {
        "task_id": change.task_id,
        "previous": None if change.previous is None else change.previous.value,
        "current": change.current.value,
        "at": change.at,
        "timed_out": change.timed_out,
        "error": None if change.error is None else str(change.error),
        "task": task_json(change.task),
    }


def status_text(status: TaskStatus | None) -> Text:
    if status is None:
        return Text("-", style="dim")
    return Text(status.value, style=STATUS_STYLE[status])


def makes_images(kind: str) -> bool:
    """Whether tasks of ``kind`` end with images (``task_result.images``), not videos: the
    image families are the ones under ``/v1/images``."""
    return kind_named(kind).path.startswith("/v1/images/")
