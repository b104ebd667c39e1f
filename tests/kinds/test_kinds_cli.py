"""``kling-async create --kind`` and ``batch`` (a ``kind`` column, ``--kind`` for rows naming
none) with the later kinds, as subprocesses against ``--emulator``."""

from __future__ import annotations

import json
from pathlib import Path

from ..cli.conftest import run_cli, sqlite_files, write_jsonl
from .common import PNG

FAST = ("--emulator", "--time-scale", "600", "--json")


def test_create_kind_effects_waits_for_the_video() -> None:
    run = run_cli(
        "create", "--kind", "effects", "-f", "effect_scene=squish",
        "-f", json_field("input", {"image": PNG}), "--wait", *FAST,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    (task,) = run.of_type("task")
    assert task["kind"] == "effects" and task["task_status"] == "submitted"
    last = run.of_type("change")[-1]
    assert last["current"] == "succeed"
    assert last["task"]["task_result"]["videos"][0]["url"].startswith("http://127.0.0.1")


def test_create_kind_image_expand_reads_numbers_and_makes_images() -> None:
    run = run_cli(
        "create", "--kind", "image-expand", "-f", f"image={PNG}",
        "-f", "up_expansion_ratio=0.5", "-f", "n=2", "--wait", *FAST,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    images = run.of_type("change")[-1]["task"]["task_result"]["images"]
    assert [i["index"] for i in images] == [0, 1]


def test_create_kind_refuses_a_bad_field_before_sending() -> None:
    run = run_cli("create", "--kind", "avatar", "-f", f"image={PNG}", *FAST)
    assert run.code == 2
    assert "audio_id: give exactly one of audio_id, sound_file" in run.stderr
    assert "emulator at" not in run.stderr  # refused before the emulator was even started
    bad = run_cli("create", "--kind", "avatar", "-f", "image", *FAST)
    assert bad.code == 2 and "NAME=VALUE" in bad.stderr
    unknown = run_cli("create", "--kind", "text-to-video", *FAST)
    assert unknown.code == 2 and "invalid choice" in unknown.stderr


def test_a_batch_file_of_mixed_kinds_and_a_default_kind(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"image_list": [PNG, PNG], "prompt": "two"},  # --kind multi-image2video
            {"kind": "effects", "effect_scene": "hug_pro", "input": {"images": [PNG, PNG]}},
            {"kind": "multi-image2image", "subject_image_list": [PNG], "n": 2},
            {"kind": "omni-video", "prompt": "dawn", "aspect_ratio": "9:16"},
        ],
    )
    run = run_cli("batch", str(source), "--kind", "multi-image2video", *FAST)
    assert run.code == 0, run.stderr
    outcomes = sorted(run.of_type("outcome"), key=lambda o: o["line"])
    assert [o["outcome"] for o in outcomes] == ["succeed"] * 4
    results = [
        json.loads(x) for x in Path(f"{source}.emulator.results.jsonl").read_text().splitlines()
    ]
    assert sorted(r["kind"] for r in results) == sorted(
        ["multi-image2video", "effects", "multi-image2image", "omni-video"]
    )


def test_a_batch_row_of_a_later_kind_is_checked_before_anything_is_sent(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"kind": "effects", "effect_scene": "squish", "input": {"image": PNG}},
            {"kind": "omni-video", "prompt": "x"},  # no aspect_ratio
        ],
    )
    run = run_cli("batch", str(source), *FAST)
    assert run.code == 2
    assert f"{source}:2: aspect_ratio: is required" in run.stderr
    assert not sqlite_files(tmp_path)


def json_field(name: str, value: object) -> str:
    return f"{name}={json.dumps(value)}"
