"""``kling-async emulator``: serves an emulator, says how to reach it and how to get on its
clock; what it prints pastes into another shell."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from kling_async import ScaledClock

from .conftest import CLI, cli_env, run_cli

BANNER_LINES = 11


@pytest.fixture
def banner() -> Iterator[list[str]]:
    """A ``kling-async emulator --time-scale 6000`` and its banner's lines: 1800 emulated
    seconds (a JWT's life, were tokens judged on the emulated clock) pass in 0.3 real
    seconds."""
    proc = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--time-scale", "6000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert proc.stdout is not None
        yield [proc.stdout.readline().rstrip("\n") for _ in range(BANNER_LINES)]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def _exports(lines: list[str]) -> dict[str, str]:
    (line,) = [x for x in lines if x.strip().startswith("export ")]
    return dict(word.split("=", 1) for word in shlex.split(line.strip())[1:])


def _value(lines: list[str], name: str) -> str:
    text = " ".join(lines)
    return text.split(f"{name}=", 1)[1].split()[0]


def test_emulator_command_prints_url_credentials_and_testing_only(banner: list[str]) -> None:
    text = "\n".join(banner)
    assert "Kling emulator listening on http://127.0.0.1:" in text
    assert "for testing only" in text
    assert "access_key=" in text and "secret_key=" in text and "api_key=" in text
    assert "video_id=" in text and "task_id=" in text
    assert "--time-scale 6000 --time-origin " in text
    assert "ScaledClock.following(6000, origin=" in text


def test_the_printed_export_line_puts_any_command_on_the_emulators_clock(
    banner: list[str],
) -> None:
    env = _exports(banner)
    assert set(env) == {"KLING_BASE_URL", "KLING_API_KEY", "KLING_TIME_SCALE", "KLING_TIME_ORIGIN"}
    time.sleep(0.5)  # 3000 emulated seconds: more than a JWT's 30 minutes
    task_id = _value(banner, "task_id")
    # The same clock with the access key pair: tasks run on the emulator's time, tokens on real.
    pair = {
        "KLING_BASE_URL": env["KLING_BASE_URL"],
        "KLING_ACCESS_KEY": _value(banner, "access_key"),
        "KLING_SECRET_KEY": _value(banner, "secret_key"),
    }
    on_clock = {k: env[k] for k in ("KLING_TIME_SCALE", "KLING_TIME_ORIGIN")}
    # A task the emulator printed is found by its id alone (it is a text2video task).
    for extra in (env, {**pair, **on_clock}):
        run = run_cli("get", task_id, "--json", env=cli_env(**extra))
        assert run.code == 0, run.stderr
        (task,) = run.of_type("task")
        assert task["task_id"] == task_id and task["kind"] == "text2video"
        assert "Traceback" not in run.stderr
    # Off its clock too: tokens are judged on real time, as Kling judges them, so any client
    # minting on real time (this one, or a third party's) is not refused after 18 s at x100.
    off_clock = run_cli("get", task_id, "--json", env=cli_env(**pair))
    assert off_clock.code == 0, off_clock.stderr


def test_scaled_clock_following_matches_the_emulators_clock() -> None:
    origin = time.time() - 10.0
    clock = ScaledClock.following(60.0, origin)
    expected = origin + (time.time() - origin) * 60.0
    assert abs(clock.time() - expected) < 1.0
    assert clock.origin is not None and abs(clock.origin - origin) < 1e-3
    assert ScaledClock(60.0).origin == pytest.approx(time.time(), abs=1.0)


def test_a_non_loopback_host_is_warned_about(tmp_path: object) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the bind fails without any traffic.
    run = run_cli("emulator", "--host", "192.0.2.1", "--port", "0", timeout=30)
    assert "for testing only" in run.stderr and "other machines" in run.stderr
    assert run.code == 2 and "cannot serve" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "flags",
    [("--port", "99999"), ("--time-scale", "0"), ("--time-scale", "nan"), ("--slots", "-3")],
)
def test_bad_emulator_flags_exit_2_without_serving(flags: tuple[str, ...]) -> None:
    run = run_cli("emulator", *flags, timeout=30)
    assert run.code == 2 and "Traceback" not in run.stderr
    assert flags[0] in run.stderr and not run.stdout


def test_clock_variables_that_are_not_numbers_exit_2() -> None:
    env = cli_env(KLING_API_KEY="k", KLING_TIME_SCALE="fast")
    run = run_cli("get", "1", env=env)
    assert run.code == 2 and "KLING_TIME_SCALE" in run.stderr
    assert "Traceback" not in run.stderr
    assert os.environ.get("KLING_TIME_SCALE") is None
