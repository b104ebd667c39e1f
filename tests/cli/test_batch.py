"""``kling-async batch``: runs, resumes, Ctrl-C, mixed kinds, bad input, live progress."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

from kling_async.cli.input import read_requests

from .conftest import (
    CLI,
    REPO,
    Remote,
    Run,
    arun_cli,
    cli_env,
    exists,
    journal_entries,
    read_jsonl,
    run_cli,
    seeded_rows,
    sqlite_files,
    write_jsonl,
)

# -- batch -----------------------------------------------------------------------------------------


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


async def test_a_damaged_journal_exits_2_with_one_line_and_sends_nothing(
    remote: Remote, tmp_path: Path
) -> None:
    from ..test_journal_damage import damaged_journal

    video = remote.emu.add_video()
    source = write_jsonl(tmp_path / "one.jsonl", seeded_rows([video]))
    journal = await damaged_journal(tmp_path / "one.jsonl.journal.sqlite")
    run = await arun_cli("batch", str(source), *remote.clock_flags, env=remote.env)
    assert run.code == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(journal) in lines[0] and "read failed" in lines[0], lines
    assert remote.emu.stats.created == 0
    assert remote.emu.stats.requests[("POST", "create", 200)] == 0


async def test_resend_ambiguous_is_the_only_way_a_relay_batch_sends_a_lost_create_again(
    tmp_path: Path,
) -> None:
    from kling_async import ScaledClock
    from kling_async.testing import Durations, Fault, KlingEmulator

    origin = time.time()
    clock = ScaledClock(100.0, start_time=origin)
    async with KlingEmulator(clock=clock, durations=Durations(queued=1, running=5)) as emu:
        video = emu.add_video()
        creds = emu.client_kwargs("relay")
        env = cli_env(KLING_BASE_URL=creds["base_url"], KLING_API_KEY=creds["api_key"])
        flags = ("--time-scale", "100", "--time-origin", repr(origin))
        source = write_jsonl(tmp_path / "relay.jsonl", seeded_rows([video]))
        emu.fault(Fault.SERVER_5001, route="create")  # nothing made, but a relay cannot tell
        first = await arun_cli("batch", str(source), "--json", *flags, env=env)
        again = await arun_cli("batch", str(source), "--json", *flags, env=env)
        assert emu.stats.created == 0 and emu.stats.requests[("POST", "create", 503)] == 1
        assert [o["outcome"] for o in first.of_type("outcome")] == ["ambiguous"], first.stderr
        assert [o["outcome"] for o in again.of_type("outcome")] == ["ambiguous"], again.stderr
        opted = await arun_cli(
            "batch", str(source), "--json", "--resend-ambiguous", *flags, env=env
        )
        assert [o["outcome"] for o in opted.of_type("outcome")] == ["succeed"], opted.stderr
        assert emu.stats.created == 1
