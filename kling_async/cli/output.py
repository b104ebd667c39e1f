"""How ``kling-async`` writes: rich text for people, JSON Lines for scripts (``--json``).

With ``--json`` stdout carries only JSON objects, one per line, each with a ``type``; messages
for people go to stderr either way. Live displays (progress bars, status lines) appear only
when stdout is a terminal. Times in JSON objects are Unix milliseconds (``at``, ``created_at``,
``updated_at``, ``sent_at``), as Kling sends them; durations (``elapsed``, video durations) are
seconds.

Nothing a server sends reaches the terminal raw: control characters (C0, DEL, C1: escape
sequences could clear the screen or write the clipboard) in any text printed for people become
U+FFFD (:func:`clean`), and C1 characters in JSON are escaped like C0 ones already are. When
stdout is closed (``| head -1``), writing stops quietly and ``on_closed`` is told, as a Unix
tool dies of SIGPIPE.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from ..kinds import kind_named
from ..models import StatusChange, Task, TaskStatus
from ..serde import task_to_json

__all__ = [
    "STATUS_STYLE",
    "Output",
    "add_row",
    "change_json",
    "clean",
    "coded",
    "id_column",
    "makes_images",
    "milliseconds",
    "status_text",
    "task_json",
]

_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_LINE_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_JSON_C1 = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def clean(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character (C0 but newlines, DEL, C1; with ``one_line``
    newlines too) replaced by U+FFFD, one for one, so that styles laid over it still fit."""
    return (_LINE_CONTROL if one_line else _CONTROL).sub("\ufffd", text)


def _clean_text(text: Text, one_line: bool) -> Text:
    if not (_LINE_CONTROL if one_line else _CONTROL).search(text.plain):
        return text
    safe = text.copy()
    safe.plain = clean(text.plain, one_line=one_line)
    return safe


def _safe(item: Any, *, one_line: bool = False) -> Any:
    if isinstance(item, str):
        return clean(item, one_line=one_line)
    if isinstance(item, Text):
        return _clean_text(item, one_line)
    return item  # tables: their cells were cleaned by add_row


def add_row(table: Table, *cells: RenderableType | None) -> None:
    """A table row whose text is safe to print: one line per cell, no control characters."""
    safe: list[RenderableType | None] = []
    for cell in cells:
        if isinstance(cell, str):
            safe.append(clean(cell, one_line=True))
        elif isinstance(cell, Text):
            safe.append(_clean_text(cell, True))
        else:
            safe.append(cell)
    table.add_row(*safe)


def coded(code: object, message: str) -> str:
    """``[code] message``, the code once (an API error's message may already lead with it)."""
    if code is None or message.startswith(f"[{code}]"):
        return message
    return f"[{code}] {message}"


def id_column(table: Table, header: str, values: list[str]) -> None:
    """A column of ids: never wrapped or cut, at any width (ids are copied and pasted)."""
    width = max([len(header), *(len(v) for v in values)])
    table.add_column(header, no_wrap=True, overflow="ignore", min_width=width)


def milliseconds(seconds: float | None) -> int | None:
    """A Unix time in seconds as the milliseconds every time in the JSON output is given in."""
    return None if seconds is None else round(seconds * 1000)


def _closed_pipe(error: OSError) -> bool:
    return isinstance(error, BrokenPipeError) or error.errno in (errno.EPIPE, errno.EINVAL)


STATUS_STYLE = {
    TaskStatus.SUBMITTED: "cyan",
    TaskStatus.PROCESSING: "yellow",
    TaskStatus.SUCCEED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.UNKNOWN: "magenta",
}


class _Console(Console):
    """A console whose reader going away is an error for :class:`Output` to handle (rich's
    default raises ``SystemExit(1)`` from inside whatever was printing)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout was closed")


class Output:
    """stdout and stderr consoles, and whether to speak JSON."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json = json_mode
        # markup=False: prompts and server messages may contain [brackets].
        self.console = _Console(file=sys.stdout, markup=False, highlight=False)
        self.err = _Console(file=sys.stderr, markup=False, highlight=False)
        #: Called once when stdout turns out to be closed (the reader of a pipe went away).
        self.on_closed: Callable[[], None] | None = None
        self.closed = False
        self._live = 0  # live displays on the stdout terminal now

    def live_started(self) -> None:
        self._live += 1

    def live_stopped(self) -> None:
        self._live -= 1

    @property
    def live(self) -> bool:
        """Whether to draw live displays: stdout is a terminal and not in JSON mode."""
        return not self.json and not self.closed and self.console.is_terminal

    def _write(self, write: Callable[[], None]) -> None:
        if self.closed:
            return
        try:
            write()
        except OSError as error:
            if not _closed_pipe(error):
                raise
            self._stdout_gone()

    def _stdout_gone(self) -> None:
        self.closed = True
        # What is still buffered, and the interpreter's last flush, go nowhere instead of
        # raising again ("Exception ignored ... BrokenPipeError") at exit.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        if self.on_closed is not None:
            self.on_closed()

    def emit(self, type_: str, /, **fields: Any) -> None:
        """One JSON object on its own line of stdout (``--json`` mode only)."""
        if self.json:
            line = json.dumps({"type": type_, **fields}, ensure_ascii=False, default=str)

            def write() -> None:
                sys.stdout.write(line.translate(_JSON_C1) + "\n")
                sys.stdout.flush()

            self._write(write)

    def print(self, *items: Any) -> None:
        """Tables and text for people on stdout (not in JSON mode)."""
        if not self.json:
            self._write(lambda: self.console.print(*(_safe(i) for i in items)))

    def line(self, text: str | Text) -> None:
        """One log line for people on stdout, never wrapped (not in JSON mode)."""
        if not self.json:
            self._write(lambda: self.console.print(_safe(text, one_line=True), soft_wrap=True))

    def note(self, message: str | Text) -> None:
        """A remark for people, on stderr; while a live display is drawn on the same terminal,
        above it (through its console), so that the next redraw does not tear it apart."""
        if self._live and self.err.is_terminal:
            self._write(lambda: self.console.print(_safe(message), soft_wrap=True))
            return
        with contextlib.suppress(BrokenPipeError):
            self.err.print(_safe(message), soft_wrap=True)

    def error(self, message: str, /, *, exit_code: int, **fields: Any) -> None:
        """``error: message`` on stderr, and an ``error`` object on stdout in JSON mode."""
        self.note(Text("error: ", style="bold red") + Text(clean(message)))
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
        "at": milliseconds(change.at),
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
