"""The ``kling-async`` command line, run as a subprocess against emulators.

Commands that need tasks to outlive one process run against an emulator in this test's event
loop (its URL and keys passed through KLING_* variables, its scaled clock through
``--time-scale``/``--time-origin``); the rest use ``--emulator``.
"""

from __future__ import annotations

import asyncio
import base64
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
from kling_async.cli import build_parser, main
from kling_async.cli.input import InputErrors, read_requests
from kling_async.journal import Journal, JournalEntry, JournalFormatError
from kling_async.kinds import KINDS
from kling_async.requests import (
    REQUEST_TYPES,
    CameraConfig,
    CameraControl,
    ImageGenerationRequest,
    LipSyncRequest,
    TextToVideoRequest,
    VideoExtendRequest,
    VirtualTryOnRequest,
)
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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def journal_entries(path: Path) -> list[JournalEntry]:
    """A journal another process writes: [] until it exists and has been set up (between the
    two, the file is an SQLite database without a journal's marks)."""
    try:
        return Journal.read(path) if path.exists() else []
    except JournalFormatError:
        return []


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
            {"video_id": "v5", "kind": "text-to-video"},
            {"prompt": "no video"},
        ],
    )
    run = await arun_cli("batch", str(source), "--json", *remote.clock_flags, env=remote.env)
    assert run.code == 2
    assert f"{source}:2: cfg_scale: must be in [0, 1]" in run.stderr
    assert f"{source}:4: promt: unknown field" in run.stderr
    assert f"{source}:5: not valid JSON" in run.stderr
    assert f"{source}:6: kind: unknown kind 'text-to-video'" in run.stderr
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
            if any(e.state == "created" for e in journal_entries(journal)):
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


async def test_a_mixed_kind_batch_creates_each_kind_and_reports_its_results(
    remote: Remote, tmp_path: Path
) -> None:
    videos = [remote.emu.add_video() for _ in range(2)]
    seeds = set(remote.emu.tasks)
    camera = {"type": "simple", "config": {"pan": -3}}
    source = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            *seeded_rows(videos),
            {"kind": "text2video", "prompt": "a lighthouse", "camera_control": camera},
            {"kind": "image-generation", "prompt": "a logo", "n": 2, "aspect_ratio": "1:1"},
            {"kind": "text2video", "prompt": "fail me"},
            {"video_id": videos[0].video_id, "prompt": "fail me"},
        ],
    )
    run = await arun_cli("batch", str(source), "--json", *remote.clock_flags, env=remote.env)
    assert run.code == 1, run.stderr  # the two "fail me" rows
    made = {i: t for i, t in remote.emu.tasks.items() if i not in seeds}
    kinds = sorted(t.kind for t in made.values())
    assert kinds == ["image-generation", *["text2video"] * 2, *["video-extend"] * 3]
    bodies = {t.kind: t.body for t in made.values() if t.body.get("prompt") != "fail me"}
    assert bodies["text2video"]["camera_control"] == {
        "type": "simple",
        "config": {"horizontal": 0, "vertical": 0, "pan": -3, "tilt": 0, "roll": 0, "zoom": 0},
    }
    assert bodies["image-generation"]["n"] == 2

    by_line = {o["line"]: o for o in run.of_type("outcome")}
    assert sorted(by_line) == [1, 2, 3, 4, 5, 6]
    assert all(o["task_id"] in made for o in by_line.values())
    assert [by_line[n]["outcome"] for n in range(1, 7)] == [*["succeed"] * 4, *["failed"] * 2]
    assert [by_line[n]["kind"] for n in (1, 2, 3, 4)] == [
        "video-extend", "video-extend", "text2video", "image-generation"
    ]  # fmt: skip
    assert [by_line[n]["video_id"] for n in (1, 2)] == [v.video_id for v in videos]
    assert "video_id" not in by_line[3] and "video_id" not in by_line[4]
    assert by_line[3]["result_video_id"] and by_line[3]["result_url"]
    images = by_line[4]["result_urls"]
    assert len(images) == 2 and all(url.startswith("http") for url in images)
    assert "result_video_id" not in by_line[4]
    results = read_jsonl(Path(f"{source}.results.jsonl"))
    assert sorted(r["line"] for r in results) == [1, 2, 3, 4, 5, 6]

    report = await arun_cli("report", f"{source}.journal.sqlite", "--json", env=remote.env)
    (data,) = report.of_type("report")
    failures = sorted((f["kind"], f["video_id"]) for f in data["failures"])
    assert failures == [("text2video", None), ("video-extend", videos[0].video_id)]


async def test_bad_rows_of_other_kinds_are_refused_by_line_and_field(
    remote: Remote, tmp_path: Path
) -> None:
    source = write_jsonl(
        tmp_path / "bad-kinds.jsonl",
        [
            {"kind": "text2video", "prompt": "fine"},
            {"kind": "text2video", "prompt": "x", "video_id": "v1"},
            {"kind": "image-generation", "prompt": "x", "n": 12},
            {"kind": "text2video", "prompt": "x", "camera_control": {"type": "simple",
                                                                      "config": {"zom": 1}}},
            {"kind": "image2video", "image": "data:image/png;base64,iVBORw0KGgo="},
            {"kind": "lip-sync", "input": {"mode": "text2video", "video_id": "v9"}},
            {"kind": "image-generation", "n": 2},
            {"kind": "text-to-video", "prompt": "x"},
            {"kind": "virtual-try-on", "human_image": "https://x.test/h.png", "prompt": "x"},
        ],
    )  # fmt: skip
    run = await arun_cli("batch", str(source), "--json", *remote.clock_flags, env=remote.env)
    assert run.code == 2
    for where in (
        ":2: video_id: unknown field; text2video takes: prompt,",
        ":3: n: must be in [1, 9]",
        ":4: camera_control.config.zom: unknown field",
        ":5: image: must be raw base64 without a 'data:",
        ":6: input.text: is required for text2video",
        ":7: prompt: is required",
        ":8: kind: unknown kind 'text-to-video'; expected one of: video-extend, text2video,",
        ":9: prompt: unknown field; virtual-try-on takes",
    ):
        assert f"{source}{where}" in run.stderr
    errors = run.of_type("error")
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, "video_id"),
        (3, "n"),
        (4, "camera_control.config.zom"),
        (5, "image"),
        (6, "input.text"),
        (7, "prompt"),
        (8, "kind"),
        (9, "prompt"),
    ]
    assert remote.requests() == 0
    assert not exists(f"{source}.journal.sqlite")


def test_an_emulator_batch_of_csv_rows_seeds_only_the_videos_rows_start_from(
    tmp_path: Path,
) -> None:
    source = tmp_path / "mixed.csv"
    source.write_text(
        "kind,video_id,prompt,n,camera_control\n"
        "video-extend,vid-a,more,,\n"
        ",vid-b,,,\n"
        'text2video,,a fox,,"{""type"": ""down_back""}"\n'
        "image-generation,,a map,3,\n"
    )
    run = run_cli("batch", str(source), "--emulator", "--time-scale", "600", "--json")
    assert run.code == 0, run.stderr
    assert "2 videos seeded" in run.stderr
    outcomes = {o["line"]: o for o in run.of_type("outcome")}
    assert {o["outcome"] for o in outcomes.values()} == {"succeed"}
    assert [outcomes[n]["kind"] for n in (2, 3, 4, 5)] == [
        "video-extend", "video-extend", "text2video", "image-generation"
    ]  # fmt: skip
    assert len(outcomes[5]["result_urls"]) == 3


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


async def test_text2video_wait_then_get_by_kind(remote: Remote) -> None:
    flags = ("--json", *remote.clock_flags)
    camera = '{"type": "simple", "config": {"zoom": 4}}'
    made = await arun_cli(
        "text2video", "a red kite over the dunes", "--mode", "pro", "--duration", "10",
        "--cfg-scale", "0.25", "--aspect-ratio", "9:16", "--camera-control", camera,
        "--wait", *flags, env=remote.env,
    )  # fmt: skip
    assert made.code == 0, made.stderr
    first, *changes = made.objects()
    assert first["type"] == "task" and first["kind"] == "text2video"
    task_id = first["task_id"]
    assert changes and changes[-1]["current"] == "succeed"
    assert changes[-1]["task"]["task_result"]["videos"][0]["url"]
    record = remote.emu.tasks[task_id]
    assert record.kind == "text2video"
    body = record.body
    assert body["prompt"] == "a red kite over the dunes" and body["mode"] == "pro"
    assert body["duration"] == "10" and body["cfg_scale"] == 0.25
    assert body["aspect_ratio"] == "9:16" and body["camera_control"]["config"]["zoom"] == 4
    assert remote.emu.stats.created == 1

    got = await arun_cli("get", task_id, "--kind", "text2video", *flags, env=remote.env)
    assert got.code == 0, got.stderr
    assert [t["task_status"] for t in got.of_type("task")] == ["succeed"]
    wrong = await arun_cli("get", task_id, *flags, env=remote.env)  # default: video-extend
    assert wrong.code == 1 and [m["task_id"] for m in wrong.of_type("missing")] == [task_id]


async def test_image2video_refuses_a_data_prefix_before_sending(remote: Remote) -> None:
    run = await arun_cli(
        "image2video", "--image", "data:image/png;base64,iVBORw0KGgo=", "--json",
        *remote.clock_flags, env=remote.env,
    )  # fmt: skip
    assert run.code == 2
    (error,) = run.of_type("error")
    assert error["message"].startswith("image: must be raw base64 without a 'data:")
    assert remote.requests() == 0


async def test_image2video_reads_an_image_file_as_raw_base64(
    remote: Remote, tmp_path: Path
) -> None:
    picture = tmp_path / "first.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    run = await arun_cli(
        "image2video", "--image", f"@{picture}", "--prompt", "wave", "--json",
        *remote.clock_flags, env=remote.env,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    (task,) = run.of_type("task")
    body = remote.emu.tasks[task["task_id"]].body
    assert body["image"] == base64.b64encode(picture.read_bytes()).decode()
    assert body["prompt"] == "wave"

    missing = await arun_cli(
        "image2video", "--image", f"@{tmp_path / 'nope.png'}", *remote.clock_flags,
        env=remote.env,
    )  # fmt: skip
    assert missing.code == 2 and "nope.png" in missing.stderr
    assert remote.emu.stats.created == 1


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


def test_kind_options_take_every_kind_and_refuse_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    for command in ("get", "watch", "download"):
        for kind in KINDS:
            assert parser.parse_args([command, "1", "--kind", kind]).kind == kind
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args([command, "1", "--kind", "text-to-video"])
        assert stopped.value.code == 2
        assert "invalid choice: 'text-to-video'" in capsys.readouterr().err


def test_an_unknown_kind_in_a_batch_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_jsonl(tmp_path / "kinds.jsonl", [{"kind": "effects", "prompt": "x"}])
    assert main(["batch", str(source), "--emulator"]) == 2
    err = capsys.readouterr().err
    assert f"{source}:1: kind: unknown kind 'effects'; expected one of: " in err
    assert all(kind in err for kind in REQUEST_TYPES)
    assert not sqlite_files(tmp_path)


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
        ("d.csv", "video_id,kind\nv1,lip-sync\n", ":2: video_id: unknown field; lip-sync takes"),
        ("d2.csv", "video_id,kind\nv1,effects\n", ":2: kind: unknown kind 'effects'"),
        ("k.csv", "kind,prompt,n\nimage-generation,x,many\n", ":2: n: must be an integer"),
        ("l.csv", "kind,prompt,n\nimage-generation,x,12\n", ":2: n: must be in [1, 9]"),
        ("m.csv", "kind,prompt,camera_control\ntext2video,x,{bad\n", ":2: camera_control: must be"),
        ("n.csv", "kind,prompt,video_id\ntext2video,x,v1\n", ":2: video_id: unknown field; text"),
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


def test_csv_rows_of_every_kind_read_numbers_and_json_cells(tmp_path: Path) -> None:
    source = tmp_path / "kinds.csv"
    lip = '{""mode"": ""text2video"", ""video_id"": ""v7"", ""text"": ""hi"", ""voice_id"": ""a""}'
    source.write_text(
        "kind,video_id,prompt,cfg_scale,n,image_fidelity,camera_control,input,human_image\n"
        ",v1,keep going,0.5,,,,,\n"
        'text2video,,  a fox  ,0.75,,,"{""type"": ""simple"", ""config"": {""roll"": 2}}",,\n'
        "image-generation,,a map,,3,0.25,,,\n"
        f'lip-sync,,,,,,,"{lip}",\n'
        "virtual-try-on,,,,,,,, https://x.test/h.png \n"
    )
    extend, t2v, images, lip_sync, try_on = (r.request for r in read_requests(source))
    assert isinstance(extend, VideoExtendRequest) and extend.cfg_scale == 0.5
    assert isinstance(t2v, TextToVideoRequest)
    assert t2v.prompt == "  a fox  " and t2v.cfg_scale == 0.75  # prompts kept as written
    assert t2v.camera_control == CameraControl(type="simple", config=CameraConfig(roll=2))
    assert isinstance(images, ImageGenerationRequest)
    assert images.n == 3 and images.image_fidelity == 0.25
    assert isinstance(lip_sync, LipSyncRequest) and lip_sync.parent_video_id == "v7"
    assert isinstance(try_on, VirtualTryOnRequest)
    assert try_on.human_image == "https://x.test/h.png"
