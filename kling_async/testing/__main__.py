"""``python -m kling_async.testing``: serve an emulator until Ctrl-C."""

from __future__ import annotations

import sys

from kling_async.testing._standalone import main

if __name__ == "__main__":
    sys.exit(main())
