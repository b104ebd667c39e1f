"""The live views on a real (pseudo-)terminal: what is on the screen while a batch runs, when
it ends, and after Ctrl-C."""

from __future__ import annotations

from pathlib import Path

from .conftest import CLI, cli_env, write_jsonl
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
