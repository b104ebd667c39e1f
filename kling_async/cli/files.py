"""The files ``kling-async`` reads and writes: checked up front, created private.

Every path a command will write (a journal, a results file, a download folder) is checked
before anything is sent, so a typo or a read-only folder stops the command at once (exit 2,
one line naming the path) instead of after a batch has run. Files hold prompts and callback
URLs (which may carry tokens): they are created 0600 (less if the umask says so) and a
symbolic link planted where one will be written is refused, never followed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO

from .._filelock import LockHeld, hold
from .session import UsageError

__all__ = [
    "check_input_file",
    "check_output_dir",
    "check_output_file",
    "open_private",
    "run_lock",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _writable_folder(folder: Path, path: Path) -> None:
    """``folder`` (or, when it does not exist yet, the nearest one it would be made in) is a
    folder that can be written."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{path}: {probe} is not a folder")
    try:  # access() says yes to root even where the kernel then says no: try it
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UsageError(f"{path}: folder {probe} is not writable ({exc.strerror})") from None


def check_output_file(path: Path, what: str) -> None:
    """``path`` can be created or overwritten as a regular file (``what``: "journal"...)."""
    if path.is_symlink():
        raise UsageError(f"{path}: the {what} is a symbolic link; refusing to follow it")
    if path.exists():
        if path.is_dir():
            raise UsageError(f"{path}: is a folder, not a {what} file")
        if not path.is_file():
            raise UsageError(f"{path}: is not a regular file, cannot be the {what}")
        if not os.access(path, os.R_OK | os.W_OK):
            raise UsageError(f"{path}: the {what} is not writable")
        return
    folder = path.parent
    if not folder.exists():
        raise UsageError(f"{path}: folder {folder} does not exist")
    _writable_folder(folder, path)


def check_output_dir(path: Path, what: str) -> None:
    """``path`` is a writable folder, or one that can be made (with its parents)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: is a file, not a folder for the {what}")
    _writable_folder(path, path)


def check_input_file(path: Path, what: str) -> None:
    """``path`` is a readable regular file."""
    if not path.exists():
        raise UsageError(f"{path}: no such file (the {what})")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a {what}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: the {what} is not readable")


def open_private(path: Path) -> IO[str]:
    """``path`` opened for writing from scratch, 0600 and never through a symbolic link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError as exc:
        if path.is_symlink():
            raise UsageError(f"{path}: is a symbolic link; refusing to follow it") from None
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:  # written by an older version, or by hand: private from now on
            os.fchmod(fd, mode & 0o600)
        return os.fdopen(fd, "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def run_lock(journal: Path) -> IO[bytes]:
    """Hold ``JOURNAL.run.lock`` while the returned file is open, or refuse (exit 2).

    The journal's own lock (taken by ``Journal.open``) keeps two writers off one journal; this
    one is held for the whole command, from before the journal is read to after the results
    file is closed, so that a second ``batch`` on the same file — an ``--emulator`` one, which
    may discard the journal and start over — cannot touch the first one's files. It is never
    deleted (a new file would be a new lock, protecting nothing). No lock where ``fcntl`` does
    not exist (Windows).
    """
    path = Path(f"{journal}.run.lock")
    try:
        return hold(path)
    except LockHeld:
        raise UsageError(
            f"journal {journal} is in use by another process (another batch on the same file "
            "still running?); nothing was sent"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
