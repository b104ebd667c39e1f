"""Set-up problems: credentials, rich missing, ``--help``, a bad journal, unknown kinds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kling_async.cli import build_parser, main
from kling_async.kinds import KINDS
from kling_async.requests import REQUEST_TYPES

from .conftest import cli_env, run_cli, sqlite_files, write_jsonl


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
    source = write_jsonl(tmp_path / "kinds.jsonl", [{"kind": "text-to-video", "prompt": "x"}])
    assert main(["batch", str(source), "--emulator"]) == 2
    err = capsys.readouterr().err
    assert f"{source}:1: kind: unknown kind 'text-to-video'; expected one of: " in err
    assert all(kind in err for kind in REQUEST_TYPES)
    assert not sqlite_files(tmp_path)
