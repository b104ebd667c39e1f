"""The ``kling-async`` command line, run as a subprocess against emulators.

Commands that need tasks to outlive one process run against an emulator in this test's event
loop (its URL and keys passed through KLING_* variables, its scaled clock through
``--time-scale``/``--time-origin``); the rest use ``--emulator``.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from kling_async import ScaledClock
from kling_async._cli_input import InputErrors, read_requests
from kling_async.cli import main
from kling_async.journal import Journal
from kling_async.testing import Durations, KlingEmulator, SeedVideo

REPO = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-m", "kling_async.cli")
SCALE = 100.0


@attrs.frozen
class Run:
    code: int | None
    stdout: str
    stderr: str

    def objects(self) -> list[dict[str, Any]]:
        """stdout as JSON Lines (every line must parse)."""
        return [json.loads(line) for line in self.stdout.splitlines()]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects() if o["type"] == kind]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLING_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "160"
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env or cli_env(), timeout=timeout
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def arun_cli(*args: str, env: dict[str, str], timeout: float = 60) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return Run(proc.returncode, out.decode(), err.decode())


@attrs.frozen
class Remote:
    """An emulator in this process, and how a CLI subprocess reaches it on the same clock."""

    emu: KlingEmulator
    env: dict[str, str]
    clock_flags: tuple[str, ...]

    def requests(self) -> int:
        return sum(self.emu.stats.requests.values())


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    origin = time.time()
    clock = ScaledClock(SCALE, start_time=origin)
    async with KlingEmulator(
        clock=clock,
        durations=Durations(queued=2, running=60),
        slot_limit=4,
        fail_when=lambda body: "risk control" if body.get("prompt") == "fail me" else None,
    ) as emu:
        creds = emu.client_kwargs("jwt")
        env = cli_env(
            KLING_BASE_URL=creds["base_url"],
            KLING_ACCESS_KEY=creds["access_key"],
            KLING_SECRET_KEY=creds["secret_key"],
        )
        yield Remote(emu, env, ("--time-scale", str(SCALE), "--time-origin", repr(origin)))


def write_jsonl(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def exists(path: Path | str) -> bool:
    return Path(path).exists()


def sqlite_files(folder: Path) -> list[Path]:
    return list(folder.glob("*.sqlite"))


def seeded_rows(videos: Sequence[SeedVideo]) -> list[dict[str, Any]]:
    return [
        {"video_id": v.video_id, "task_id": v.task_id, "prompt": f"shot {i}"}
        for i, v in enumerate(videos)
    ]


# -- batch ---------------------------------------------------------------------------------------


def test_readme_batch_runs_to_completion_then_resumes_without_sending(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    main_job = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "kling-async batch examples/requests.jsonl --emulator" in main_job
    source = tmp_path / "requests.jsonl"
    shutil.copy(REPO / "examples" / "requests.jsonl", source)
    total = len(read_requests(source))
    downloads = tmp_path / "videos"

    first = run_cli(
        "batch", str(source), "--emulator", "--time-scale", "600", "--json",
        "--download", str(downloads),
    )  # fmt: skip
    assert first.code == 0, first.stderr
    outcomes = first.of_type("outcome")
    assert len(outcomes) == total
    assert {o["outcome"] for o in outcomes} == {"succeed"}
    assert sorted(o["line"] for o in outcomes) == list(range(1, total + 1))
    (summary,) = first.of_type("summary")
    assert summary["counts"] == {"succeed": total} and summary["exit_code"] == 0
    assert len(first.of_type("download")) == total
    assert len(list(downloads.glob("*.mp4"))) == total
    results_path = Path(f"{source}.emulator.results.jsonl")
    assert Path(summary["results"]) == results_path
    results = [json.loads(line) for line in results_path.read_text().splitlines()]
    assert len(results) == total
    assert all(r["result_video_id"] and r["task_id"] and not r["from_journal"] for r in results)
    assert Path(f"{source}.emulator.journal.sqlite").exists()
    assert not Path(f"{source}.journal.sqlite").exists()  # a demo never stands in for real work

    # Human output, not a terminal: no live display, no escape codes, the summary table.
    again = run_cli("batch", str(source), "--emulator", "--time-scale", "600")
    assert again.code == 0, again.stderr
    assert "nothing to send" in again.stderr
    assert "\x1b[" not in again.stdout
    assert "succeed" in again.stdout and str(total) in again.stdout
    results = [json.loads(line) for line in results_path.read_text().splitlines()]
    assert len(results) == total and all(r["from_journal"] for r in results)

    report = run_cli("report", f"{source}.emulator.journal.sqlite", "--json")
    assert report.code == 0, report.stderr
    (data,) = report.of_type("report")
    assert data["counts"] == {"succeed": total} and data["running"] == []


async def test_bad_input_is_refused_with_file_line_and_field(
    remote: Remote, tmp_path: Path
) -> None:
    source = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"video_id": "v1", "prompt": "fine"},
            {"video_id": "v2", "cfg_scale": 1.5},
            "",
            {"video_id": "v3", "promt": "typo"},
            "{not json",
            {"video_id": "v5", "kind": "text2video"},
            {"prompt": "no video"},
        ],
    )
    run = await arun_cli("batch", str(source), "--json", *remote.clock_flags, env=remote.env)
    assert run.code == 2
    assert f"{source}:2: cfg_scale: must be in [0, 1]" in run.stderr
    assert f"{source}:4: promt: unknown field" in run.stderr
    assert f"{source}:5: not valid JSON" in run.stderr
    assert f"{source}:6: kind: 'text2video' is not supported" in run.stderr
    assert f"{source}:7: video_id: is required" in run.stderr
    errors = run.of_type("error")
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, "cfg_scale"),
        (4, "promt"),
        (5, None),
        (6, "kind"),
        (7, "video_id"),
    ]
    assert all(e["file"] == str(source) and e["exit_code"] == 2 for e in errors)
    assert remote.requests() == 0  # not even the credentials check
    assert not exists(f"{source}.journal.sqlite")


async def test_ctrl_c_stops_reports_in_flight_and_the_next_run_resumes(
    remote: Remote, tmp_path: Path
) -> None:
    n = 12
    videos = [remote.emu.add_video() for _ in range(n)]
    source = write_jsonl(tmp_path / "batch.jsonl", seeded_rows(videos))
    args = ("batch", str(source), "--slots", "4", "--json", *remote.clock_flags)
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, env=remote.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        for _ in range(3000):
            if remote.emu.stats.created >= 4 or proc.returncode is not None:
                break
            await asyncio.sleep(0.005)
        assert proc.returncode is None, "the batch ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert time.monotonic() - stopped < 10
    assert proc.returncode == 130, err.decode()
    first = Run(proc.returncode, out.decode(), err.decode())
    (interrupted,) = first.of_type("interrupted")
    assert interrupted["total"] == n
    created_before = remote.emu.stats.created
    assert 0 < created_before < n
    in_flight = interrupted["running"] + interrupted["unconfirmed"]
    assert interrupted["finished"] + len(in_flight) + interrupted["not_sent"] == n
    assert interrupted["finished"] < n
    assert "run the same command again to resume" in first.stderr

    second = await arun_cli(*args, env=remote.env)
    assert second.code == 0, second.stderr
    assert "resuming from" in second.stderr
    assert remote.emu.stats.created == n  # nothing created twice across the two runs
    outcomes = second.of_type("outcome")
    assert len(outcomes) == n and {o["outcome"] for o in outcomes} == {"succeed"}
    assert len({o["task_id"] for o in outcomes}) == n
    followed = {o["task_id"] for o in outcomes if not o["from_journal"]}
    assert set(interrupted["running"]) <= followed  # followed, not created again


def test_an_interrupted_emulator_batch_starts_over(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "demo.jsonl", [{"video_id": f"vid-{i}"} for i in range(6)])
    journal = Path(f"{source}.emulator.journal.sqlite")
    proc = subprocess.Popen(
        [*CLI, "batch", str(source), "--emulator", "--time-scale", "20", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and any(e.state == "created" for e in Journal.read(journal)):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "the next --emulator run starts over" in err
    (interrupted,) = Run(proc.returncode, out, err).of_type("interrupted")
    assert interrupted["running"] and interrupted["total"] == 6

    again = run_cli("batch", str(source), "--emulator", "--time-scale", "600", "--json")
    assert again.code == 0, again.stderr
    assert "starting the batch over" in again.stderr
    outcomes = again.of_type("outcome")
    assert len(outcomes) == 6
    assert all(o["outcome"] == "succeed" and not o["from_journal"] for o in outcomes)


async def test_wrong_credentials_exit_3_before_any_create(remote: Remote, tmp_path: Path) -> None:
    video = remote.emu.add_video()
    source = write_jsonl(tmp_path / "one.jsonl", seeded_rows([video]))
    env = {**remote.env, "KLING_SECRET_KEY": "not-the-secret-key-but-long-enough-for-hs256"}
    run = await arun_cli("batch", str(source), *remote.clock_flags, env=env)
    assert run.code == 3, run.stderr
    assert "1002" in run.stderr
    assert remote.emu.stats.created == 0
    assert not sqlite_files(tmp_path)  # nothing was recorded as rejected


# -- one task at a time --------------------------------------------------------------------------


async def test_extend_wait_get_watch_and_download(remote: Remote, tmp_path: Path) -> None:
    parent = remote.emu.add_video()
    flags = ("--json", *remote.clock_flags)

    made = await arun_cli(
        "extend", parent.video_id, "--prompt", "pull back", "--wait", *flags, env=remote.env
    )
    assert made.code == 0, made.stderr
    first, *changes = made.objects()
    assert first["type"] == "task" and first["task_status"] == "submitted"
    task_id = first["task_id"]
    assert all(c["type"] == "change" and c["task_id"] == task_id for c in changes)
    assert changes[-1]["current"] == "succeed"
    assert changes[-1]["task"]["task_result"]["videos"][0]["id"]

    bad = await arun_cli("extend", parent.video_id, "--prompt", "fail me", *flags, env=remote.env)
    assert bad.code == 0, bad.stderr  # created; without --wait that is all it does
    failing = bad.objects()[0]["task_id"]

    watched = await arun_cli("watch", task_id, failing, *flags, env=remote.env)
    assert watched.code == 1, watched.stderr
    last = {c["task_id"]: c for c in watched.of_type("change")}
    assert last[task_id]["current"] == "succeed"
    assert last[failing]["current"] == "failed"
    assert last[failing]["task"]["task_status_msg"] == "risk control"

    got = await arun_cli("get", task_id, "999999999999999999", *flags, env=remote.env)
    assert got.code == 1
    assert [t["task_id"] for t in got.of_type("task")] == [task_id]
    assert [m["task_id"] for m in got.of_type("missing")] == ["999999999999999999"]

    dest = tmp_path / "out"
    fetched = await arun_cli("download", task_id, "--dest", str(dest), *flags, env=remote.env)
    assert fetched.code == 0, fetched.stderr
    (result,) = fetched.of_type("download")
    assert result["status"] == "downloaded" and result["size"] > 0
    assert Path(result["path"]).parent == dest and exists(result["path"])


async def test_extend_validates_before_anything_is_sent(remote: Remote) -> None:
    run = await arun_cli("extend", "some-video", "--cfg-scale", "2", env=remote.env)
    assert run.code == 2
    assert "cfg_scale" in run.stderr and "[0, 1]" in run.stderr
    assert remote.requests() == 0


# -- set-up problems -----------------------------------------------------------------------------


def test_missing_credentials_say_what_to_set(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "ok.jsonl", [{"video_id": "v1"}])
    run = run_cli("batch", str(source))
    assert run.code == 2
    for needed in ("KLING_ACCESS_KEY", "KLING_SECRET_KEY", "KLING_API_KEY", "--emulator"):
        assert needed in run.stderr
    assert not sqlite_files(tmp_path)


def test_half_a_key_pair_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KLING_API_KEY", "KLING_ACCESS_KEY", "KLING_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["get", "123", "--access-key", "ak-only"]) == 2
    assert "KLING_SECRET_KEY (or --secret-key) is not set" in capsys.readouterr().err


def test_without_rich_the_cli_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from kling_async.cli import main\n"
        "sys.exit(main(['get', '123', '--emulator']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=30
    )
    assert done.returncode == 2
    hint = "kling-async needs rich for its output: pip install 'kling-async[cli]'"
    assert done.stderr.strip() == hint


def test_help_documents_exit_codes_and_json() -> None:
    run = run_cli("batch", "--help")
    assert run.code == 0
    for text in ("exit codes:", "130", "JSON Lines", "--emulator", "video_id (required)"):
        assert text in run.stdout


def test_report_of_a_missing_or_foreign_file_is_a_usage_error(tmp_path: Path) -> None:
    assert run_cli("report", str(tmp_path / "nope.sqlite")).code == 2
    foreign = tmp_path / "notes.sqlite"
    foreign.write_text("not a database, just text that is long enough " * 40)
    run = run_cli("report", str(foreign), "--json")
    assert run.code == 2
    (error,) = run.of_type("error")
    assert "not a kling_async journal" in error["message"]


# -- live display and the emulator command -------------------------------------------------------


def test_progress_bars_only_on_a_terminal(tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    source = write_jsonl(tmp_path / "three.jsonl", [{"video_id": f"vid-{i}"} for i in range(3)])
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "batch", str(source), "--emulator", "--time-scale", "600"],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env=cli_env(TERM="xterm-256color"),
    )
    os.close(slave)
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0
    text = screen.decode(errors="replace")
    assert "\x1b[" in text  # drawn, not printed
    for bar in ("submitted", "processing", "succeed", "failed"):
        assert bar in text
    assert "3/3" in text


def test_emulator_command_prints_url_and_credentials() -> None:
    proc = subprocess.Popen(
        [*CLI, "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        banner = "".join(lines)
        assert "Kling emulator listening on http://127.0.0.1:" in banner
        assert "access_key=" in banner and "secret_key=" in banner and "api_key=" in banner
        assert "video_id=" in banner
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


# -- reading input files (in process) ------------------------------------------------------------


def test_csv_columns_aliases_and_types(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(
        "video_id,task_id,prompt,cfg_scale,watermark,kind,external_task_id\n"
        'v1,t1,"a prompt, with a comma",0.5,yes,video-extend,x-1\n'
        "\n"
        'v2,,"two\nlines",,no,,\n'
        "v3,,,1,,,\n"
    )
    rows = read_requests(source)
    assert [r.line for r in rows] == [2, 4, 6]
    first, second, third = (r.request for r in rows)
    assert first.parent_task_id == "t1" and first.prompt == "a prompt, with a comma"
    assert first.cfg_scale == 0.5 and first.watermark_info is not None
    assert first.watermark_info.enabled and first.external_task_id == "x-1"
    assert second.prompt == "two\nlines" and second.watermark_info is not None
    assert not second.watermark_info.enabled
    assert third.cfg_scale == 1.0 and third.parent_task_id is None


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("a.csv", "video_id,promt\nv1,x\n", ":1: promt: unknown field"),
        ("b.csv", "video_id,cfg_scale\nv1,high\n", ":2: cfg_scale: must be a number"),
        ("c.csv", "video_id,watermark\nv1,maybe\n", ":2: watermark: must be true or false"),
        ("d.csv", "video_id,kind\nv1,lip-sync\n", ":2: kind: 'lip-sync' is not supported"),
        ("e.jsonl", '{"video_id": "v1", "task_id": "a", "parent_task_id": "b"}\n', ":1: "),
        ("f.jsonl", '["v1"]\n', ":1: expected a JSON object"),
        ("g.jsonl", '{"video_id": "v1", "task_id": " t"}\n', ":1: task_id: must not start"),
        ("h.jsonl", '{"video_id": 5}\n', ":1: video_id: must be a string"),
        (
            "i.jsonl",
            '{"video_id": "v1", "external_task_id": "x"}\n'
            '{"video_id": "v2", "external_task_id": "x"}\n',
            ":2: external_task_id: 'x' is already used on line 1",
        ),
        ("j.jsonl", "\n\n", ": has no requests"),
    ],
)
def test_bad_rows_name_the_line_and_field(tmp_path: Path, name: str, text: str, where: str) -> None:
    source = tmp_path / name
    source.write_text(text)
    with pytest.raises(InputErrors) as caught:
        read_requests(source)
    assert f"{source}{where}" in str(caught.value)
