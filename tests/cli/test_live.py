"""The live views on a real (pseudo-)terminal: what is on the screen while a batch runs, when
it ends, and after Ctrl-C."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kling_async.testing import Durations, KlingEmulator

from .conftest import CLI, arun_cli, cli_env, write_jsonl
from .screen import render, run_on_terminal

BARS = ("sent", "running", "succeeded", "failed")


def _bar_lines(screen: list[str]) -> list[str]:
    return [line for line in screen if "━" in line and line.split()[0] in BARS]


def test_progress_bars_on_a_terminal_show_sent_running_succeeded_failed(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "three.jsonl", [{"video_id": f"vid-{i}"} for i in range(3)])
    code, output = run_on_terminal(
        [*CLI, "batch", str(source), "--emulator", "--time-scale", "600"],
        cli_env(TERM="xterm-256color"),
    )
    assert code == 0, output
    assert "\x1b[" in output  # drawn, not printed
    assert "Traceback" not in output
    screen = render(output)
    bars = _bar_lines(screen)
    assert [line.split()[0] for line in bars] == list(BARS)
    final = {line.split()[0]: line.split()[-1] for line in bars}
    assert final == {"sent": "3/3", "running": "0/3", "succeeded": "3/3", "failed": "0/3"}
    assert any("3/3 done" in line and "slots" in line for line in screen)
    assert any("total" in line for line in screen)  # the summary table follows the bars


def test_ctrl_c_leaves_no_stale_progress_on_the_screen(tmp_path: Path) -> None:
    rows = [{"video_id": f"vid-{i}"} for i in range(6)]
    source = write_jsonl(tmp_path / "six.jsonl", rows)

    def running(text: str) -> bool:  # interrupt once the view shows tasks on their way
        screen = render(text)
        return any(line.startswith("   running") and " 0/6" not in line for line in screen)

    code, output = run_on_terminal(
        [*CLI, "batch", str(source), "--emulator", "--time-scale", "20", "--emulator-slots", "2"],
        cli_env(TERM="xterm-256color"),
        interrupt_when=running,
    )
    assert code == 130, output
    assert "Traceback" not in output
    seen = render(output)
    assert not _bar_lines(seen), "\n".join(seen)  # the bars were erased, not left stale
    text = "\n".join(seen)
    assert "interrupted: stopping" in text
    assert "interrupted: " in text and "of 6 requests finished" in text
    assert not any("ETA" in line for line in seen)


async def test_ctrl_c_in_watch_erases_the_status_line_and_says_how_to_follow_again(
    tmp_path: Path,
) -> None:
    async with KlingEmulator(durations=Durations(queued=1, running=3000)) as emu:
        creds = emu.client_kwargs("key")
        env = cli_env(
            KLING_BASE_URL=creds["base_url"], KLING_API_KEY=creds["api_key"], TERM="xterm"
        )
        made = await arun_cli("text2video", "a kite", "--json", env=env)
        (task,) = made.of_type("task")
        task_id = task["task_id"]

        def following(text: str) -> bool:
            return any(f"task {task_id}:" in line for line in render(text))

        code, output = await asyncio.to_thread(
            run_on_terminal, [*CLI, "watch", task_id], env, interrupt_when=following
        )
    assert code == 130, output
    assert "Traceback" not in output
    screen = [line for line in render(output) if line.strip()]
    assert not any(f"task {task_id}:" in line for line in screen), screen  # no stale spinner
    assert any(f"kling-async watch {task_id}" in line for line in screen), screen
