"""A batch to be killed for ``fault_pace.py``: ``python _pace_child.py CONFIG_JSON``.

Runs the config's ``rows`` (video-extend fields) with ``client`` keyword arguments and its
``journal``, as ``fault_pace.run_batch`` does, printing one line per outcome."""

from __future__ import annotations

import asyncio
import json
import sys

from fault_pace import run_batch


async def main(config: dict[str, object]) -> None:
    await run_batch(config["client"], config["rows"], str(config["journal"]), echo=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
