"""``kling-async batch``: a journalled, resumable bulk run with live progress.

``batch FILE`` validates every row (a request of any kind) first (exit 2 naming
``file:line: field``, nothing sent), then runs ``extend_many`` with a journal next to the input
(``FILE.journal.sqlite``; with ``--emulator`` ``FILE.emulator.journal.sqlite``, so a demo can
never stand in for real work), writes one result line per request (``FILE.results.jsonl``),
and ends with a summary. Running it again resumes: finished requests are reported from the
journal without a request, created tasks are followed, and lost answers are looked up before
anything is sent again. Ctrl-C stops it and says what is still running (exit 130).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.text import Text

from ..batch.preflight import Preflight
from ..batch.run import BatchReport, Outcome, request_key
from ..client import KlingClient
from ..errors import AccountError, APIError, AuthenticationError, InvalidRequestError
from ..journal import Journal, JournalEntry, SharedJournal
from .files import check_input_file, check_output_dir, check_output_file, open_private, run_lock
from .input import InputErrors, Row, read_requests
from .output import makes_images
from .progress import BatchView, failures_table, summary_table
from .report import discard_journal, read_journal, summarize_journal
from .session import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Context,
    check_credentials,
    open_client,
)
from .shared import is_shared, open_shared, shared_results

__all__ = ["batch_command"]

_FINISHED = ("succeed", "failed", "rejected")  # reported from the journal without a request


def default_path(source: Path, emulator: bool, suffix: str) -> Path:
    return Path(f"{source}{'.emulator' if emulator else ''}.{suffix}")


# -- results -------------------------------------------------------------------------------------


class ResultsFile:
    """``FILE.results.jsonl``: one JSON line per request, written as each one ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> ResultsFile:
        self._file = open_private(self.path)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()

    def write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()


def result_record(row: Row, outcome: Outcome, earlier: JournalEntry | None) -> dict[str, Any]:
    """The results-file line for one request: ``video_id`` when it starts from a video, the
    result video's ``result_*`` fields, or an image kind's ``result_urls``."""
    request, task = row.request, outcome.task
    error = outcome.error
    detail = (earlier.detail or {}) if earlier is not None and outcome.from_journal else {}
    record: dict[str, Any] = {
        "line": row.line,
        "key": outcome.key,
        "kind": request.kind,
        "outcome": outcome.outcome,
    }
    if request.parent_video_id is not None:
        record["video_id"] = request.parent_video_id
    record["task_id"] = task.task_id if task is not None else detail.get("task_id")
    record["status"] = task.task_status.value if task is not None else None
    record["external_task_id"] = (task.external_task_id if task is not None else None) or getattr(
        request, "external_task_id", None
    )
    if makes_images(request.kind):
        record["result_urls"] = [] if task is None else [i.url for i in task.task_result.images]
    else:
        video = task.video if task is not None else None
        record["result_video_id"] = video.id if video is not None else None
        record["result_url"] = video.url if video is not None else None
        record["result_duration"] = video.duration if video is not None else None
    record["units"] = task.units_deducted if task is not None else None
    record["message"] = outcome.message or str(detail.get("message") or detail.get("error") or "")
    record["code"] = error.code if isinstance(error, APIError) else detail.get("code")
    record["request_id"] = error.request_id if isinstance(error, APIError) else None
    record["from_journal"] = outcome.from_journal
    return record


def _exit_code(outcomes: Sequence[Outcome]) -> int:
    if any(isinstance(o.error, (AuthenticationError, AccountError)) for o in outcomes):
        return EXIT_REFUSED
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_INCOMPLETE


# -- batch ---------------------------------------------------------------------------------------


async def _preflight(kling: KlingClient) -> None:
    """One cheap read, so wrong credentials stop the run before any create is recorded."""
    try:
        async for _ in kling.list_tasks(page_size=1, max_pages=1):
            pass
    except InvalidRequestError:
        pass  # a relay that cannot list: nothing to learn here


def _input_errors(ctx: Context, error: InputErrors) -> int:
    for item in error.errors:
        ctx.out.error(str(item), exit_code=EXIT_USAGE, **item.to_dict())
    if error.more:
        ctx.out.note(f"... and {error.more} more errors")
    ctx.out.note("nothing was sent")
    return EXIT_USAGE


def _paths(ctx: Context, source: Path) -> tuple[Path, Path]:
    """The journal and results files, checked before anything is read or sent."""
    args = ctx.args
    journal = Path(args.journal or default_path(source, args.emulator, "journal.sqlite"))
    results = Path(args.results or default_path(source, args.emulator, "results.jsonl"))
    check_output_file(journal, "journal")
    check_output_file(results, "results")
    if args.download:
        check_output_dir(Path(args.download), "downloads")
    return journal, results


async def _open_journal(ctx: Context, path: Path) -> tuple[Journal | None, dict[str, JournalEntry]]:
    """An existing journal, locked, and what it holds (``None`` if there is none yet: it is
    made once the credentials are known to work). A refusal (in use, not a journal) comes
    before anything is said about resuming. An interrupted ``--emulator`` run's tasks ended
    with its emulator: that journal is emptied (under the run lock) and the batch starts over."""
    if not await asyncio.to_thread(path.exists):
        return None, {}
    journal = await Journal.open(path)
    try:
        earlier = {e.key: e for e in await journal.entries()}
        if ctx.args.emulator and earlier:
            left = summarize_journal(list(earlier.values()))
            if left.running or left.unconfirmed:
                ctx.out.note(
                    "the last --emulator run was interrupted and its emulator ended with it: "
                    "starting the batch over"
                )
                await journal.close()
                discard_journal(path)
                journal = await Journal.open(path)
                earlier = {}
    except BaseException:
        await journal.close()
        raise
    return journal, earlier


async def batch_command(ctx: Context) -> int:
    args = ctx.args
    source = Path(args.file)
    check_input_file(source, "batch file")
    try:
        rows = read_requests(source, default_kind=getattr(args, "kind", None))
    except InputErrors as error:
        return _input_errors(ctx, error)
    if is_shared(args.journal):
        return await _shared_batch(ctx, rows, source)
    journal_path, results = _paths(ctx, source)
    check_credentials(args)
    with contextlib.closing(run_lock(journal_path)):
        journal, earlier = await _open_journal(ctx, journal_path)
        async with contextlib.AsyncExitStack() as stack:
            if journal is not None:
                stack.push_async_callback(journal.close)

            async def journal_now() -> Journal:
                nonlocal journal
                if journal is None:
                    journal = await Journal.open(journal_path)
                    stack.push_async_callback(journal.close)
                return journal

            async def left() -> list[JournalEntry]:
                return read_journal(journal_path)

            code = await _run(ctx, rows, journal_now, str(journal_path), left, earlier, results)
    return code


async def _shared_batch(ctx: Context, rows: list[Row], source: Path) -> int:
    """One worker of a batch in a PostgreSQL journal (see :mod:`.shared`)."""
    results = shared_results(ctx, source)
    if ctx.args.download:
        check_output_dir(Path(ctx.args.download), "downloads")
    check_credentials(ctx.args)
    async with await open_shared(ctx, source) as journal:

        async def journal_now() -> SharedJournal:
            return journal

        earlier = {e.key: e for e in await journal.entries()}
        return await _run(ctx, rows, journal_now, journal.path, journal.entries, earlier, results)


async def _run(
    ctx: Context,
    rows: list[Row],
    journal_now: Callable[[], Awaitable[Journal | SharedJournal]],
    journal_path: str,
    left_now: Callable[[], Awaitable[list[JournalEntry]]],
    earlier: dict[str, JournalEntry],
    results: Path,
) -> int:
    args, out = ctx.args, ctx.out
    seen: collections.Counter[str] = collections.Counter()
    keys = [request_key(row.request, seen) for row in rows]
    finished = sum(1 for k in keys if k in earlier and earlier[k].outcome in _FINISHED)
    if earlier:
        left = summarize_journal([earlier[k] for k in keys if k in earlier])
        out.note(
            f"resuming from {journal_path}: {finished} of {len(rows)} finished earlier, "
            f"{len(left.running)} tasks to follow, {len(left.unconfirmed)} lost answers to look up"
        )
    by_request = {id(row.request): row for row in rows}
    outcomes: list[Outcome] = []
    records: list[dict[str, Any]] = []
    try:
        async with open_client(ctx, requests=[r.request for r in rows]) as kling:
            if finished < len(rows) and not args.emulator:
                await _preflight(kling)
            if args.preflight:  # before the journal: a refused batch leaves nothing behind
                unseen = [r.request for r, k in zip(rows, keys, strict=True) if k not in earlier]
                await Preflight(kling.resource_packs, kling.clock)(unseen)
            journal = await journal_now()
            batch = kling.extend_many(
                [r.request for r in rows],
                journal=journal,
                slots=args.slots,
                timeout=args.timeout,
                resend_ambiguous=args.resend_ambiguous,
            )
            with ResultsFile(results) as results_file:
                async with BatchView(out, batch, len(rows)) as view:
                    async for outcome in batch:
                        row = by_request[id(outcome.request)]
                        record = result_record(row, outcome, earlier.get(outcome.key))
                        results_file.write(record)
                        outcomes.append(outcome)
                        records.append(record)
                        view.outcome(record, outcome)
            report = batch.report()
            code = _exit_code(outcomes)
            if args.download:
                from .downloads import show_downloads

                tasks = [
                    o.task
                    for o in outcomes
                    if o.ok and o.task is not None and not makes_images(o.task.kind)
                ]
                downloads = await kling.download(tasks, args.download, concurrency=4)
                if show_downloads(ctx, downloads, tasks) and code == EXIT_OK:
                    code = EXIT_INCOMPLETE
    except asyncio.CancelledError:
        if not ctx.interrupted:
            raise
        _interrupted(ctx, await left_now(), journal_path, results, len(rows))
        return EXIT_INTERRUPTED
    _summary(ctx, report, records, len(rows), results, journal_path, code)
    return code


def _summary(
    ctx: Context,
    report: BatchReport,
    records: list[dict[str, Any]],
    total: int,
    results: Path,
    journal: str,
    code: int,
) -> None:
    out = ctx.out
    if records and all(r["from_journal"] for r in records):
        out.note("nothing to send: every request finished in an earlier run")
    out.emit(
        "summary",
        counts=report.counts,
        total=total,
        units=report.units,
        elapsed=report.elapsed,
        results=str(results),
        journal=str(journal),
        exit_code=code,
    )
    out.print(summary_table(report.counts, total, report.units, report.elapsed))
    failures = failures_table(records)
    if failures is not None:
        out.print(failures)
    out.line(Text(f"results: {results}", style="dim"))
    out.line(Text(f"journal: {journal}", style="dim"))


def _interrupted(
    ctx: Context, entries: list[JournalEntry], journal: str, results: Path, total: int
) -> None:
    """After Ctrl-C: what the journal says is still out there, and how to go on."""
    summary = summarize_journal(entries)
    done = sum(summary.counts.values())
    not_started = total - summary.entries
    ctx.out.emit(
        "interrupted",
        finished=done,
        total=total,
        running=summary.running,
        unconfirmed=summary.unconfirmed,
        not_sent=len(summary.unsent) + max(0, total - summary.entries),
        journal=str(journal),
        results=str(results),
        exit_code=EXIT_INTERRUPTED,
    )
    not_sent = len(summary.unsent) + max(0, not_started)
    lines = [f"interrupted: {done} of {total} requests finished (results so far: {results})"]
    if ctx.args.emulator:
        lines.append(
            f"  {len(summary.running)} tasks were running in the emulator, which ends with this "
            "run: the next --emulator run starts over"
        )
        ctx.out.note("\n".join(lines))
        return
    lines.append(
        f"  {len(summary.running)} tasks still running on Kling: the next run follows them "
        "without creating them again"
    )
    if summary.running:
        shown = ", ".join(summary.running[:5])
        lines.append(f"    {shown}{' ...' if len(summary.running) > 5 else ''}")
    if summary.unconfirmed:
        lines.append(
            f"  {len(summary.unconfirmed)} creates were sent without an answer: the next run "
            "looks them up before sending anything"
        )
    lines.append(f"  {not_sent} not sent yet")
    lines.append("run the same command again to resume")
    ctx.out.note("\n".join(lines))
