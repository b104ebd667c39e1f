"""docs/emulator-rules.md names real tests: every ``file.py::test_name`` it cites exists (a
``*`` suffix matches a prefix), so the list of modelled rules cannot drift from the suite."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"`((?:tests/)?[\w/]+\.py)(?:::(\w+\*?))?`")


def test_every_cited_test_exists() -> None:
    text = (ROOT / "docs" / "emulator-rules.md").read_text(encoding="utf-8")
    cited = CITED.findall(text)
    assert len(cited) > 40
    for path, name in cited:
        if path.startswith("testing/") or path.startswith("kling_async/"):
            continue  # a module of the emulator, not a test
        where = ROOT / path if path.startswith("tests/") else ROOT / "tests" / "emulator" / path
        assert where.is_file(), path
        if name:
            source = where.read_text(encoding="utf-8")
            pattern = rf"def {name[:-1]}\w*" if name.endswith("*") else rf"def {name}\("
            assert re.search(pattern, source), f"{path}::{name}"
