"""The one-task commands: ``extend``, ``text2video``, ``image2video``, ``get``, ``watch``,
``download``."""

from __future__ import annotations

import base64
from pathlib import Path

from .conftest import Remote, arun_cli, exists


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
    # By id alone: every family is tried, so what a command printed can be fetched as it is.
    alone = await arun_cli("get", task_id, *flags, env=remote.env)
    assert alone.code == 0, alone.stderr
    assert [(t["task_id"], t["kind"]) for t in alone.of_type("task")] == [(task_id, "text2video")]
    wrong = await arun_cli("get", task_id, "--kind", "video-extend", *flags, env=remote.env)
    assert wrong.code == 1 and [m["task_id"] for m in wrong.of_type("missing")] == [task_id]
    assert "without --kind every family is tried" in wrong.stderr


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
