"""The server as a whole: unknown routes, lifecycle, client kwargs, the standalone command."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from kling_async.testing import KlingEmulator
from kling_async.testing._standalone import main


async def test_unknown_routes_are_json_1203(api: Any) -> None:
    for path in ("/v1/videos/nope", "/v2/videos/video-extend", "/kling/v1/videos/unknown/1"):
        status, answer = await api.call("GET", path)
        api.assert_error(status, answer, 404, 1203)
    assert api.emu.stats.requests[("GET", "other", 404)] == 3


async def test_wrong_methods_are_json_1202(api: Any) -> None:
    for method, path in [
        ("DELETE", "/v1/videos/video-extend"),
        ("POST", "/v1/videos/video-extend/123"),
        ("POST", "/kling/v1/images/generations/123"),  # the generic poller only GETs
        ("PUT", "/kling/v1/videos/video-extend"),
    ]:
        status, answer = await api.call(method, path, json={})
        api.assert_error(status, answer, 404, 1202)
    assert api.emu.stats.created == 0


async def test_client_kwargs_for_each_flavour(emu: KlingEmulator) -> None:
    assert emu.client_kwargs() == {
        "base_url": emu.url,
        "access_key": "emu-ak-0001",
        "secret_key": emu.credentials.secret_key,
    }
    assert emu.client_kwargs("key") == {"base_url": emu.url, "api_key": "emu-static-key"}
    assert emu.client_kwargs("relay") == {
        "base_url": emu.url + "/kling",
        "api_key": "sk-emu-relay",
    }
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url)
    assert emu.relay_url == emu.url + "/kling"
    with pytest.raises(ValueError, match="flavour"):
        emu.client_kwargs("oauth")  # type: ignore[arg-type]


async def test_client_kwargs_need_keys() -> None:
    async with KlingEmulator(api_keys=(), relay_keys=()) as emu:
        with pytest.raises(ValueError, match="api_keys"):
            emu.client_kwargs("key")
        with pytest.raises(ValueError, match="relay_keys"):
            emu.client_kwargs("relay")


async def test_lifecycle() -> None:
    emu = KlingEmulator()
    with pytest.raises(RuntimeError, match="not been started"):
        _ = emu.url
    async with emu:
        with pytest.raises(RuntimeError, match="already running"):
            await emu.start()
    await emu.close()


async def test_tasks_view_is_read_only(emu: KlingEmulator) -> None:
    seed = emu.add_video()
    assert emu.tasks[seed.task_id].kind == "text2video"
    with pytest.raises(TypeError):
        emu.tasks[seed.task_id] = emu.tasks[seed.task_id]  # type: ignore[index]
    with pytest.raises(KeyError):
        emu.task_json("missing")


def test_bad_options_exit_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--time-scale", "0"]) == 2
    assert main(["--webhook-secret", "whsec_***"]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.timeout(30)
def test_standalone_serves_until_terminated() -> None:
    command = [
        sys.executable,
        "-W",
        "error",
        "-m",
        "kling_async.testing",
        "--time-scale",
        "50",
        "--slots",
        "3",
        "--balance",
        "10",
        "--seed",
        "4",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, first
        rest = "".join(proc.stdout.readline() for _ in range(5))
        assert "sk-emu-relay" in rest
        assert "emu-static-key" in rest
        video_id = re.search(r"video_id=(\S+)", rest)
        assert video_id, rest

        request = urllib.request.Request(
            url.group(0) + "/v1/videos/video-extend",
            data=json.dumps({"video_id": video_id.group(1)}).encode(),
            headers={"Authorization": "Bearer emu-static-key", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            data = json.loads(answer.read())["data"]
        assert data["task_status"] == "submitted"

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert err == ""
