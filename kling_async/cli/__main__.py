"""``python -m kling_async.cli``: the same as the ``kling-async`` command."""

from __future__ import annotations

import sys

from .parser import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
