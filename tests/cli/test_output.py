"""What the commands print: codes once, whole ids, no control characters from the server, one
time unit in JSON, private files, clear download statuses, help that reads well."""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kling_async import ScaledClock
from kling_async.cli import build_parser
from kling_async.journal import Intent, Journal
from kling_async.testing import Durations, KlingEmulator

from .conftest import SCALE, Remote, arun_cli, cli_env, run_cli, write_jsonl

HOSTILE = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b[31mrisk\x9b2Jcontrol\x08\r\nfaked line"


@pytest.fixture
async def hostile() -> AsyncIterator[Remote]:
    """An emulator whose failed tasks' messages (server text) carry terminal escapes."""
    origin = time.time()
    clock = ScaledClock(SCALE, start_time=origin)
    async with KlingEmulator(
        clock=clock, durations=Durations(queued=1, running=5), fail_when=lambda body: HOSTILE
    ) as emu:
        creds = emu.client_kwargs("key")
        env = cli_env(KLING_BASE_URL=creds["base_url"], KLING_API_KEY=creds["api_key"])
        yield Remote(emu, env, ("--time-scale", str(SCALE), "--time-origin", repr(origin)))


def _controls(text: str) -> list[str]:
    return re.findall("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)


async def test_control_characters_from_the_server_never_reach_the_terminal(
    hostile: Remote,
) -> None:
    made = await arun_cli("text2video", "a kite", "--wait", *hostile.clock_flags, env=hostile.env)
    assert made.code == 1, made.stderr
    task_id = [t for t, r in hostile.emu.tasks.items() if r.kind == "text2video"][-1]
    got = await arun_cli("get", task_id, *hostile.clock_flags, env=hostile.env)
    for run in (made, got):
        assert not _controls(run.stdout) and not _controls(run.stderr), repr(run.stdout)
        assert "risk" in run.stdout and "faked line" in run.stdout
    assert "\ufffd" in got.stdout
    # JSON keeps the message as it was sent, every control character escaped.
    as_json = await arun_cli("get", task_id, "--json", *hostile.clock_flags, env=hostile.env)
    assert not _controls(as_json.stdout.replace("\n", ""))
    (task,) = as_json.of_type("task")
    assert task["task_status_msg"] == HOSTILE


async def test_error_codes_are_shown_once(remote: Remote, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", [{"video_id": "no-such-video"}])
    run = await arun_cli("batch", str(source), *remote.clock_flags, env=remote.env)
    assert run.code == 1, run.stderr
    report = run_cli("report", f"{source}.journal.sqlite")
    for text in (run.stdout, report.stdout):
        assert "[1201]" in text
        assert not re.search(r"\[(\d+)\]\s*\[\1\]", text), text


async def test_task_ids_never_wrap_at_narrow_widths(remote: Remote) -> None:
    videos = [remote.emu.add_video(5.0) for _ in range(3)]
    ids = [v.task_id for v in videos]
    for columns in ("80", "50"):
        env = {**remote.env, "COLUMNS": columns}
        run = await arun_cli("get", *ids, *remote.clock_flags, env=env)
        assert run.code == 0, run.stderr
        for task_id in ids:
            assert any(task_id in line for line in run.stdout.splitlines()), run.stdout
        assert "…" not in run.stdout  # nor a kind or a status cut short


async def test_json_times_are_milliseconds(remote: Remote) -> None:
    video = remote.emu.add_video(5.0)
    run = await arun_cli(
        "extend", video.video_id, "--wait", "--json", *remote.clock_flags, env=remote.env
    )
    assert run.code == 0, run.stderr
    (task,) = run.of_type("task")
    changes = run.of_type("change")
    assert changes
    for change in changes:
        assert isinstance(change["at"], int)
        assert abs(change["at"] - task["created_at"]) < 3_600_000  # same unit: within an hour
        assert change["at"] >= task["created_at"] - 1000


# -- files ----------------------------------------------------------------------------------------


def test_the_files_a_batch_writes_are_private(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "two.jsonl", [{"video_id": "v1"}, {"video_id": "v2"}])
    videos = tmp_path / "videos"
    run = run_cli(
        "batch", str(source), "--emulator", "--time-scale", "600", "--download", str(videos)
    )
    assert run.code == 0, run.stderr
    written = [
        Path(f"{source}.emulator.journal.sqlite"),
        Path(f"{source}.emulator.journal.sqlite.lock"),
        Path(f"{source}.emulator.results.jsonl"),
        *videos.glob("*.mp4"),
    ]
    assert len(written) == 5
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize("planted", ["results.jsonl", "journal.sqlite-wal"])
def test_a_planted_symbolic_link_is_refused_not_followed(tmp_path: Path, planted: str) -> None:
    source = write_jsonl(tmp_path / "one.jsonl", [{"video_id": "v1"}])
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, f"{source}.emulator.{planted}")
    run = run_cli("batch", str(source), "--emulator", "--time-scale", "600")
    assert run.code == 2, run.stderr
    assert "symbolic link" in run.stderr and "Traceback" not in run.stderr
    assert victim.read_text() == "precious\n"


# -- download -------------------------------------------------------------------------------------


@pytest.fixture
async def slow() -> AsyncIterator[Remote]:
    """An emulator whose tasks run for minutes of real time."""
    async with KlingEmulator(durations=Durations(queued=1, running=3000)) as emu:
        creds = emu.client_kwargs("key")
        env = cli_env(KLING_BASE_URL=creds["base_url"], KLING_API_KEY=creds["api_key"])
        yield Remote(emu, env, ())


async def test_download_says_when_a_task_is_not_finished(slow: Remote, tmp_path: Path) -> None:
    made = await arun_cli("text2video", "a kite", "--json", env=slow.env)
    assert made.code == 0, made.stderr
    (task,) = made.of_type("task")
    dest = tmp_path / "videos"
    early = await arun_cli("download", task["task_id"], "--dest", str(dest), "--json", env=slow.env)
    assert early.code == 1, early.stderr
    (result,) = early.of_type("download")
    assert result["detail"].startswith("not finished")
    assert not early.of_type("missing")  # found without --kind: it is a text2video task
    human = await arun_cli("download", task["task_id"], "--dest", str(dest), env=slow.env)
    assert human.code == 1
    assert "not finished" in human.stdout and "no_video" not in human.stdout
    assert not list(dest.glob("*.mp4"))


async def test_download_by_id_alone_finds_a_task_of_another_kind(
    remote: Remote, tmp_path: Path
) -> None:
    video = remote.emu.add_video(5.0)  # made by a (seeded) text2video task
    dest = tmp_path / "videos"
    run = await arun_cli(
        "download", video.task_id, "--dest", str(dest), *remote.clock_flags, env=remote.env
    )
    assert run.code == 0, run.stderr
    assert [p.name for p in dest.glob("*.mp4")] == [f"{video.video_id}.mp4"]


async def test_download_from_a_journal_with_nothing_finished_says_so(tmp_path: Path) -> None:
    path = tmp_path / "batch.sqlite"
    async with await Journal.open(path) as journal:
        await journal.record_intents([Intent("k", {"video_id": "v"})])
    run = await arun_cli("download", "--journal", str(path), "--emulator", env=cli_env())
    assert run.code == 1
    assert "nothing to download" in run.stderr and "Traceback" not in run.stderr


# -- help -----------------------------------------------------------------------------------------


def _help(*argv: str) -> str:
    parser = build_parser()
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
        parser.parse_args([*argv, "--help"])
    return out.getvalue()


def test_help_reads_well() -> None:
    batch = run_cli("batch", "--help").stdout  # as a person runs it
    assert "\n\noutput:" in batch
    for command in ("get", "watch", "download", "batch", "report", "extend", "text2video"):
        text = _help(command)
        positional = text.split("positional arguments:", 1)
        if len(positional) == 2:
            block = positional[1].split("\n\n", 1)[0]
            for line in block.splitlines()[1:]:
                if line.strip() and not line.startswith(" " * 10):
                    assert len(line.split()) > 1, (command, line)  # a name and its help
    for command in ("extend", "text2video", "image2video", "get", "watch", "batch", "download"):
        usage = _help(command).split("\n\n", 1)[0]
        # metavars say what a value is (X, N, TEXT...), not argparse's echo of the flag name
        assert set(re.findall(r"\b[A-Z]+_[A-Z_]+\b", usage)) <= {"VIDEO_ID", "TASK_ID"}, usage
    emulator = _help("emulator")
    assert "TIME_SCALE" not in emulator and "SLOTS" not in emulator and "PORT" in emulator
    assert "testing only" in " ".join(emulator.split())  # however wide the terminal wraps it
    get = " ".join(_help("get").split())
    assert "effects" in get and "multi-image2video" in get  # every kind, all creatable


def test_the_readme_main_job_installs_only_the_cli_extra() -> None:
    from .conftest import REPO

    readme = (REPO / "README.md").read_text()
    main_job = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "pip install -q -e '.[cli]'" in main_job
    assert "kling-async batch examples/requests.jsonl --emulator" in main_job
    test_command = readme.split("<!-- test-command -->", 1)[1].split("```", 2)[1]
    assert ".[dev]" in test_command and "scripts/test-pythons" in test_command
    # which runs the suite with warnings as errors, in a venv per Python with the dev extra
    runner = (REPO / "scripts" / "test-pythons").read_text()
    assert '/bin/pytest" -W error' in runner and "-e '.[dev]'" in runner
