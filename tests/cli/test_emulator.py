"""``kling-async emulator``: serves an emulator and says how to reach it."""

from __future__ import annotations

import signal
import subprocess

from .conftest import CLI, cli_env


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
