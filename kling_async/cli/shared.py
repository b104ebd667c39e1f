"""The command line with a shared PostgreSQL journal: ``batch FILE --journal postgresql://…``
and ``report postgresql://… --batch NAME``.

Every worker runs the same ``batch`` command (same FILE, same DSN and batch name) on its own
machine; each writes its own results file (``FILE.results.<host>-<pid>.jsonl``: one line per
request it handled). The DSN may be just ``postgresql://`` to take everything from the ``PG*``
environment variables; its password is never printed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ..journal import JournalEntry, SharedJournal
from ..postgres import is_dsn
from .files import check_output_file
from .session import Context, UsageError

__all__ = ["batch_name", "is_shared", "open_shared", "read_shared", "shared_results"]


def is_shared(journal: str | None) -> bool:
    """Whether ``--journal``/``JOURNAL`` names a PostgreSQL database."""
    return is_dsn(journal)


def batch_name(ctx: Context, source: Path | None) -> str:
    """``--batch``, else the batch file's name (every worker runs the same file)."""
    name = ctx.args.batch or (source.name if source is not None else None)
    if not name:
        raise UsageError("give the batch's name: --batch NAME")
    return str(name)


def shared_results(ctx: Context, source: Path) -> Path:
    """This worker's results file: several workers may share a directory."""
    if ctx.args.results:
        path = Path(ctx.args.results)
    else:
        host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())
        path = Path(f"{source}.results.{host[:60]}-{os.getpid()}.jsonl")
    check_output_file(path, "results")
    return path


async def open_shared(ctx: Context, source: Path) -> SharedJournal:
    return await SharedJournal.open(
        ctx.args.journal, batch=batch_name(ctx, source), outage=ctx.args.db_outage
    )


async def read_shared(ctx: Context) -> tuple[str, list[JournalEntry]]:
    """For ``report``: the batch's name (``--batch``, or the database's only batch) and its
    entries."""
    dsn: str = ctx.args.journal
    name = ctx.args.batch
    if not name:
        names = await SharedJournal.batches(dsn)
        if len(names) != 1:
            listed = ", ".join(names[:10]) or "none yet"
            raise UsageError(f"name the batch with --batch NAME (batches here: {listed})")
        name = names[0]
    return name, await SharedJournal.read(dsn, name)
