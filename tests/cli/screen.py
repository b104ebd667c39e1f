"""A terminal screen small enough to read: what a user would see after the bytes a program
wrote to its pseudo-terminal, for checking live displays (the cursor moves and erases rich's
``Live`` uses; colours and other escapes are dropped)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

_ESCAPE = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def render(data: str, width: int = 200) -> list[str]:
    """The screen's lines (trailing blanks stripped) after writing ``data`` from the top left."""
    lines: list[list[str]] = [[]]
    row = col = 0
    pos = 0
    while pos < len(data):
        match = _ESCAPE.match(data, pos)
        if match:
            params, final = match.group(1) or "", match.group(2)
            n = int(params) if params.isdigit() else None
            if final == "A":
                row = max(0, row - (n or 1))
            elif final == "B":
                row += n or 1
            elif final == "C":
                col += n or 1
            elif final == "D":
                col = max(0, col - (n or 1))
            elif final == "G":
                col = (n or 1) - 1
            elif final == "K":
                while len(lines) <= row:
                    lines.append([])
                if params in ("", "0"):
                    del lines[row][col:]
                elif params == "2":
                    lines[row] = []
            elif final == "J" and params in ("", "0"):
                del lines[row + 1 :]
                del lines[row][col:]
            pos = match.end()
            continue
        char = data[pos]
        pos += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            col = 0
        elif char in "\x07\x08\x0e\x0f\x1b":
            continue
        else:
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            while len(line) < col:
                line.append(" ")
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
    return ["".join(line).rstrip() for line in lines]


def run_on_terminal(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    interrupt_when: Callable[[str], bool] | None = None,
    timeout: float = 60,
) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; with ``interrupt_when``, send
    SIGINT (a Ctrl-C) once what it wrote so far satisfies it. The exit code and the output."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=slave, env=env)
    os.close(slave)
    output = b""
    interrupted = False
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
            text = output.decode(errors="replace")
            if interrupt_when is not None and not interrupted and interrupt_when(text):
                proc.send_signal(signal.SIGINT)
                interrupted = True
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode, output.decode(errors="replace")
