"""Bad input on purpose, as a person would give it: bad numbers, bad paths, pipes that close,
a second batch on a busy file. Each ends with one line and its exit code, never a traceback,
and nothing sent (or written) that should not be."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kling_async import ScaledClock
from kling_async.cli.live import GIVE_UP_AFTER
from kling_async.journal import Intent, Journal
from kling_async.testing import Durations, Fault, KlingEmulator

from .conftest import (
    CLI,
    SCALE,
    Remote,
    arun_cli,
    cli_env,
    journal_entries,
    run_cli,
    write_jsonl,
)


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# -- numbers: argparse refuses them before anything runs -------------------------------------------

BAD_FLAGS = [
    ("watch", "1", "--timeout", "-5"),
    ("watch", "1", "--timeout", "nan"),
    ("batch", "{file}", "--timeout", "-1"),
    ("batch", "{file}", "--slots", "0"),
    ("extend", "{video}", "--wait", "--timeout", "0"),
    ("extend", "{video}", "--emulator-failure-rate", "3"),
    ("get", "1", "--emulator-slots", "-3"),
    ("get", "1", "--time-scale", "0"),
    ("get", "1", "--time-origin", "-1"),
    ("download", "1", "--concurrency", "0"),
]


async def test_a_bad_number_exits_2_naming_the_flag_and_sends_nothing(
    remote: Remote, tmp_path: Path
) -> None:
    video = remote.emu.add_video(5.0)
    source = write_jsonl(tmp_path / "one.jsonl", [{"video_id": video.video_id}])
    cases = [[a.format(file=source, video=video.video_id) for a in argv] for argv in BAD_FLAGS]
    runs = await asyncio.gather(*(arun_cli(*args, env=remote.env) for args in cases))
    for args, run in zip(cases, runs, strict=True):
        assert run.code == 2, (args, run.stderr)
        assert "Traceback" not in run.stderr
        flag = next(a for a in args if a.startswith("--") and a != "--wait")
        assert f"argument {flag}" in run.stderr, args
    assert remote.requests() == 0 and remote.emu.stats.created == 0
    assert sorted(p.name for p in os.scandir(tmp_path)) == ["one.jsonl"]


# -- paths: checked up front, one line naming the path -------------------------------------------


async def test_file_system_problems_are_one_line_naming_the_path(
    remote: Remote, tmp_path: Path
) -> None:
    video = remote.emu.add_video(5.0)
    source = write_jsonl(tmp_path / "one.jsonl", [{"video_id": video.video_id}])
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (("report", str(tmp_path)), str(tmp_path)),
        (("batch", str(source), "--journal", str(tmp_path)), str(tmp_path)),
        (("batch", str(source), "--journal", "/nonexistent/dir/j.sqlite"), "/nonexistent/dir"),
        (("batch", str(source), "--results", "/nonexistent/dir/r.jsonl"), "/nonexistent/dir"),
        (("batch", str(source), "--download", str(a_file)), str(a_file)),
        (("batch", str(tmp_path)), str(tmp_path)),
        (("download", "123", "--dest", str(a_file)), str(a_file)),
        (("download", "--journal", str(tmp_path)), str(tmp_path)),
    ]
    runs = await asyncio.gather(*(arun_cli(*argv, env=remote.env) for argv, _ in cases))
    for (argv, path), run in zip(cases, runs, strict=True):
        assert run.code == 2, (argv, run.stderr)
        assert path in _one_error_line(run.stderr), argv
    assert remote.requests() == 0
    assert a_file.read_text() == "not a folder"


def _unwritable_folder() -> Path:
    """A folder this process cannot write, even as root (sysfs refuses new files)."""
    for folder in (Path("/sys/kernel"), Path("/proc/self")):
        try:
            with open(folder / ".kling-probe", "w"):
                pass
        except OSError:
            return folder
        os.unlink(folder / ".kling-probe")  # pragma: no cover
    pytest.skip("no unwritable folder here")  # pragma: no cover


async def test_an_unwritable_download_folder_stops_the_batch_before_it_runs(
    remote: Remote, tmp_path: Path
) -> None:
    video = remote.emu.add_video(5.0)
    source = write_jsonl(tmp_path / "one.jsonl", [{"video_id": video.video_id}])
    dest = _unwritable_folder() / "videos"
    run = await arun_cli(
        "batch", str(source), "--download", str(dest), *remote.clock_flags, env=remote.env
    )
    assert run.code == 2, run.stderr
    assert "not writable" in _one_error_line(run.stderr)
    assert remote.emu.stats.created == 0
    assert sorted(p.name for p in os.scandir(tmp_path)) == ["one.jsonl"]


# -- pipes that close -----------------------------------------------------------------------------


async def test_json_into_a_closed_pipe_exits_quietly(remote: Remote) -> None:
    video = remote.emu.add_video(5.0)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: `| true`
    proc = await asyncio.create_subprocess_exec(
        *CLI, "get", video.task_id, "--json", env=remote.env, stdout=write,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    os.close(write)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    assert err.decode() == ""  # quietly: no traceback, no "Exception ignored"


@pytest.mark.parametrize("mode", [["--json"], []], ids=["json", "people"])
def test_a_batch_into_a_pipe_that_closes_stops_and_keeps_its_journal(
    tmp_path: Path, mode: list[str]
) -> None:
    rows = [{"video_id": f"vid-{i}"} for i in range(12)]
    source = write_jsonl(tmp_path / "twelve.jsonl", rows)
    proc = subprocess.Popen(
        [*CLI, "batch", str(source), "--emulator", "--time-scale", "300", *mode,
         "--emulator-slots", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert ('"type": "outcome"' if mode else "succeed  line") in first
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert "interrupted:" in err
    entries = journal_entries(Path(f"{source}.emulator.journal.sqlite"))
    assert entries and any(e.outcome == "succeed" for e in entries)
    assert sum(1 for e in entries if e.outcome is not None) < len(rows)  # it stopped


# -- one batch per journal ------------------------------------------------------------------------


def test_a_second_emulator_batch_on_the_same_file_is_refused_untouched(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "six.jsonl", [{"video_id": f"vid-{i}"} for i in range(6)])
    results = Path(f"{source}.emulator.results.jsonl")
    first = subprocess.Popen(
        [*CLI, "batch", str(source), "--emulator", "--time-scale", "30", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        journal = Path(f"{source}.emulator.journal.sqlite")
        deadline = time.monotonic() + 30
        while not any(e.task_id for e in journal_entries(journal)):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.02)
        before = results.stat()
        second = run_cli("batch", str(source), "--emulator", "--time-scale", "30")
        assert second.code == 2, second.stderr
        assert "in use by another process" in _one_error_line(second.stderr)
        assert "starting the batch over" not in second.stderr
        after = results.stat()
        assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
    assert first.returncode == 130, err


async def test_a_locked_journal_is_refused_before_any_resuming_line(
    remote: Remote, tmp_path: Path
) -> None:
    video = remote.emu.add_video(5.0)
    source = write_jsonl(tmp_path / "one.jsonl", [{"video_id": video.video_id}])
    path = tmp_path / "busy.sqlite"
    async with await Journal.open(path) as held:
        await held.record_intents([Intent("some-key", {"video_id": video.video_id})])
        run = await arun_cli(
            "batch", str(source), "--journal", str(path), *remote.clock_flags, env=remote.env
        )
    assert run.code == 2
    assert "in use by another process" in _one_error_line(run.stderr)
    assert "resuming" not in run.stderr
    assert remote.emu.stats.created == 0


# -- an API that cannot be reached ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", [[], ["--kind", "text2video"]], ids=["any-kind", "one-kind"])
def test_watch_against_an_unreachable_url_says_so_and_exits_4(kind: list[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    env = cli_env(KLING_API_KEY="key", KLING_BASE_URL=url)
    started = time.monotonic()
    # --time-scale: the retries' waits (0.5 s doubling) pass 100 times faster.
    run = run_cli("watch", "123", *kind, "--time-scale", "100", env=env, timeout=60)
    assert time.monotonic() - started < 20
    assert run.code == 4, run.stderr
    assert "Traceback" not in run.stderr
    assert f"no usable answer from {url}" in run.stderr and "trying again" in run.stderr
    assert "still running" not in run.stderr and "not finished" not in run.stderr
    assert url in _one_error_line(run.stderr)


@pytest.fixture
async def long_tasks() -> AsyncIterator[Remote]:
    """An emulator 100 times faster than real time whose tasks still run for a real minute."""
    origin = time.time()
    clock = ScaledClock(SCALE, start_time=origin)
    async with KlingEmulator(clock=clock, durations=Durations(queued=1, running=6000)) as emu:
        creds = emu.client_kwargs("key")
        env = cli_env(KLING_BASE_URL=creds["base_url"], KLING_API_KEY=creds["api_key"])
        yield Remote(emu, env, ("--time-scale", str(SCALE), "--time-origin", repr(origin)))


async def test_a_watch_whose_polls_keep_failing_gives_up_with_exit_4(long_tasks: Remote) -> None:
    remote = long_tasks
    made = await arun_cli("text2video", "a kite", "--json", *remote.clock_flags, env=remote.env)
    (task,) = made.of_type("task")

    def gets() -> int:
        return sum(n for (_, route, _), n in remote.emu.stats.requests.items() if route == "get")

    before = gets()
    proc = await asyncio.create_subprocess_exec(
        *CLI, "watch", task["task_id"], "--kind", "text2video", *remote.clock_flags,
        env=remote.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(2000):  # the look-up answered: from now on every poll fails
            if gets() > before:
                break
            await asyncio.sleep(0.002)
        remote.emu.fault(Fault.SERVER_5000, route="get", times=None)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = err.decode()
    assert proc.returncode == 4, stderr
    assert f"attempt {GIVE_UP_AFTER} of {GIVE_UP_AFTER} failed" in stderr or "gave up" in stderr
    assert "gave up after" in _one_error_line(stderr)
    assert f"not finished: {task['task_id']}" in stderr
