"""Every ```python block of README.md and docs/ runs, as a reader would run it.

Each block runs alone, in a fresh namespace and an empty working directory, as ``__main__``
(so ``asyncio.run(main())`` runs; a block with top-level ``await`` runs in a fresh event loop).
An emulator serves in a thread, and the environment points the ``KLING_*`` variables at it,
so an example that reads credentials from the environment runs unmodified. The one liberty
taken: a client made without a ``clock`` gets the emulator's ``ScaledClock`` (time runs
``SCALE`` times faster), so a 320-second extend takes half a second.

A block that cannot run alone says so on the line before it: ``<!-- not-run: reason -->``.
A block that needs a PostgreSQL database says ``<!-- needs: postgresql -->``: it runs with the
``PG*`` variables pointing at a fresh database of the test server (``postgresql://`` reaches it),
and is skipped like any PostgreSQL test where there is no server.
A failure names the file and line of the block, and the traceback shows the Markdown lines.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import re
import threading
import traceback
import types
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

import kling_async.client
from kling_async import ScaledClock
from kling_async.testing import KlingEmulator

ROOT = Path(__file__).resolve().parents[2]
SCALE = 600.0
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(\S.*?)\s*-->")
NEEDS = re.compile(r"<!--\s*needs:\s*(postgresql)\s*-->")
# Seeded in the emulator: the ids the examples use.
VIDEO_ID, PARENT_TASK_ID = "video-id", "parent-task-id"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"kling-async-docs-example-secret").decode()


class Block:
    def __init__(
        self, path: Path, line: int, source: str, skip: str | None, needs: str | None = None
    ) -> None:
        self.path, self.line, self.source, self.skip = path, line, source, skip
        self.needs = needs

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    """The ```python blocks of a Markdown file (``line``: its first line of code)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, lang = fence.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        if lang in ("python", "py"):
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker, needs = NOT_RUN.search(before), NEEDS.search(before)
            code = "\n".join(line[len(indent) :] for line in lines[i + 1 : end])
            yield Block(
                path, i + 2, code, marker.group(1) if marker else None,
                needs.group(1) if needs else None,
            )  # fmt: skip
        i = end + 1


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


ALL = [b for doc in documents() for b in blocks(doc)]


class EmulatorThread:
    """A KlingEmulator serving from its own event loop in a thread, on ``clock``."""

    def __init__(self, clock: ScaledClock) -> None:
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _run(self, coro: types.CoroutineType[object, object, object]) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _start(self) -> KlingEmulator:
        emu = KlingEmulator(clock=self.clock, webhook_secret=WEBHOOK_SECRET)
        await emu.start()
        emu.add_video(5.0, video_id=VIDEO_ID, task_id=PARENT_TASK_ID)
        return emu

    def __enter__(self) -> KlingEmulator:
        self.thread.start()
        emu = self._run(self._start())
        assert isinstance(emu, KlingEmulator)
        self.emu = emu
        return emu

    def __exit__(self, *exc_info: object) -> None:
        self._run(self.emu.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def test_the_documents_have_examples_and_few_are_not_run() -> None:
    assert len(ALL) >= 10
    skipped = [b.where for b in ALL if b.skip]
    assert len(skipped) <= max(2, len(ALL) // 8), skipped


def test_a_not_run_marker_needs_a_reason(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("<!-- not-run: needs a GPU -->\n```python\nboom\n```\n\n```py\nok = 1\n```\n")
    found = list(blocks(doc))
    assert [(b.line, b.skip, b.source) for b in found] == [
        (3, "needs a GPU", "boom"),
        (7, None, "ok = 1"),
    ]


def test_a_needs_marker_names_what_the_block_needs(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("<!-- needs: postgresql -->\n```python\nok = 1\n```\n```python\nok = 2\n```\n")
    assert [(b.needs, b.skip) for b in blocks(doc)] == [("postgresql", None), (None, None)]


def test_a_failing_example_is_named_by_file_and_line(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text("# A guide\n\n```python\nx = 1\nraise KeyError(x)\n```\n")
    (block,) = blocks(doc)
    with pytest.raises(AssertionError, match=r"guide\.md:4: the example fails: KeyError") as err:
        run(block)
    frames = traceback.extract_tb(err.value.__cause__.__traceback__)  # type: ignore[union-attr]
    assert (frames[-1].filename, frames[-1].lineno) == (str(doc), 5)  # the Markdown line


@pytest.mark.parametrize(("code", "fails"), [(0, False), (None, False), (1, True)])
def test_an_example_may_exit_cleanly(tmp_path: Path, code: int | None, fails: bool) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(f"```python\nraise SystemExit({code})\n```\n")
    (block,) = blocks(doc)
    if fails:
        with pytest.raises(AssertionError, match="exits 1"):
            run(block)
    else:
        run(block)


@pytest.mark.parametrize("block", ALL, ids=[b.where for b in ALL])
def test_example_runs(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if block.skip:
        pytest.skip(f"{block.where}: not run: {block.skip}")
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    if block.needs == "postgresql":
        dsn = urllib.parse.urlsplit(request.getfixturevalue("pg_dsn"))
        database = {"PGHOST": dsn.hostname, "PGPORT": dsn.port, "PGUSER": dsn.username}
        database["PGDATABASE"] = dsn.path.lstrip("/")
        for name, value in database.items():
            monkeypatch.setenv(name, str(value))
    clock = ScaledClock(SCALE)
    with EmulatorThread(clock) as emu:
        for name in ("KLING_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY", "KLING_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        for name, value in emu.client_kwargs("jwt").items():
            monkeypatch.setenv(f"KLING_{name.upper()}", value)
        relay = emu.client_kwargs("relay")
        monkeypatch.setenv("RELAY_URL", relay["base_url"])
        monkeypatch.setenv("RELAY_KEY", relay["api_key"])
        monkeypatch.setenv("KLING_WEBHOOK_SECRET", WEBHOOK_SECRET)
        monkeypatch.setattr(kling_async.client, "SystemClock", lambda: clock)
        monkeypatch.chdir(tmp_path)
        run(block)


def run(block: Block) -> None:
    # Padding puts the code on its Markdown lines: tracebacks point into the document.
    source = "\n" * (block.line - 1) + block.source
    try:
        code = compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        namespace = {"__name__": "__main__"}
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):  # top-level await
            asyncio.run(result)
    except SystemExit as done:  # `raise SystemExit(asyncio.run(main()))`: fine when it is 0
        if done.code not in (None, 0):
            raise AssertionError(f"{block.where}: the example exits {done.code!r}") from done
    except Exception as exc:
        raise AssertionError(f"{block.where}: the example fails: {exc!r}") from exc
