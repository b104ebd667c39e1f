"""Advisory locks held by keeping a side file open: one place for how, the callers say why."""

from __future__ import annotations

import os
from typing import IO

__all__ = ["LockHeld", "hold"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class LockHeld(Exception):
    """Another process holds the lock."""


def hold(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open (creating it 0600, never through a symbolic link) and lock ``path`` exclusively;
    the lock lasts while the returned file is open. :class:`LockHeld` if another process has
    it; ``OSError`` if the file cannot be opened. The file is never deleted: a new file would
    be a new lock, protecting nothing. No lock where ``fcntl`` does not exist (Windows)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    handle = os.fdopen(fd, "r+b")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise LockHeld(os.fspath(path)) from None
    return handle
