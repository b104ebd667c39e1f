"""A damaged journal (a zeroed page in the middle) is a JournalError naming the file and
what failed, for reads and writes alike; a batch on it sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kling_async import VideoExtendRequest
from kling_async.journal import Intent, Journal, JournalError

from .conftest import MakeClient, MakeEmulator, requests_to

PAGE = 4096


async def damaged_journal(path: Path, rows: int = 300) -> Path:
    async with await Journal.open(path) as journal:
        body = {"kind": "video-extend", "body": {"video_id": "v", "prompt": "x" * 200}}
        await journal.record_intents([Intent(f"k{i}", body) for i in range(rows)])
    zero_page(path)
    return path


def zero_page(path: Path) -> None:
    assert path.stat().st_size > 10 * PAGE
    with path.open("r+b") as f:  # one page in the middle of the table, zeroed
        f.seek(5 * PAGE)
        f.write(b"\0" * PAGE)


async def test_reading_a_damaged_journal_names_the_file_and_the_read(tmp_path: Path) -> None:
    path = await damaged_journal(tmp_path / "j.sqlite")
    with pytest.raises(JournalError) as info:
        Journal.read(path)
    assert info.value.path == str(path) and info.value.operation == "read"
    assert str(path) in str(info.value) and "read failed" in str(info.value)
    async with await Journal.open(path) as journal:
        with pytest.raises(JournalError) as opened:
            await journal.entries()
    assert opened.value.operation == "read" and str(path) in str(opened.value)


async def test_a_batch_on_a_damaged_journal_sends_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient, tmp_path: Path
) -> None:
    emu = await make_emulator()
    seed = emu.add_video()
    path = await damaged_journal(tmp_path / "b.sqlite")
    kling = make_client(emu)
    batch = kling.extend_many([VideoExtendRequest(video_id=seed.video_id)], journal=path)
    with pytest.raises(JournalError, match="read failed"):
        async for _ in batch:
            pass
    assert requests_to(emu, "create") == 0
