"""Release hygiene that can drift: the licence, the Pythons claimed and the Pythons tested, and
the distribution check (``scripts/check_dist.py``) catching what it is there to catch."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _check_dist() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / "scripts" / "check_dist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _claimed_pythons() -> list[tuple[int, int]]:
    found = []
    for classifier in PYPROJECT["classifiers"]:
        match = re.fullmatch(r"Programming Language :: Python :: (\d+)\.(\d+)", classifier)
        if match:
            found.append((int(match[1]), int(match[2])))
    return sorted(found)


def test_the_licence_file_is_the_one_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PYPROJECT["license"] == "MIT" and text.startswith("MIT License\n")
    assert "Copyright (c)" in text and "the kling_async authors" in text
    assert "License :: OSI Approved :: MIT License" in PYPROJECT["classifiers"]


def test_the_classifiers_claim_every_python_from_requires_python_on() -> None:
    claimed = _claimed_pythons()
    oldest = tuple(int(p) for p in PYPROJECT["requires-python"].removeprefix(">=").split("."))
    assert claimed[0] == oldest
    assert claimed == [(3, minor) for minor in range(oldest[1], claimed[-1][1] + 1)]


def test_the_test_command_runs_the_suite_on_the_oldest_and_newest_claimed_python() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme.split("<!-- test-command -->", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    assert command.count("\n") == 1, "the test command is one line"
    (tested,) = re.findall(r"scripts/test-pythons ((?:\d+\.\d+ ?)+)", command)
    claimed = _claimed_pythons()
    assert tested.split() == [f"{v[0]}.{v[1]}" for v in (claimed[0], claimed[-1])]
    assert "python -m build" in command and "scripts/check_dist.py" in command


def test_check_dist_refuses_a_wheel_with_tests_and_without_py_typed(tmp_path: Path) -> None:
    check = _check_dist()
    wheel = tmp_path / "kling_async-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("kling_async/__init__.py", "")
        archive.writestr("tests/test_client.py", "")
        archive.writestr("kling_async-0.dist-info/METADATA", "Requires-Python: >=3.10\n")
    problems = "\n".join(check.check_wheel(wheel))
    for expected in ("py.typed", "ships tests", "outside kling_async/", "LICENSE", "3.13"):
        assert expected in problems


@pytest.mark.parametrize("name", ["tests/conftest.py", "kling_async/tests/x.py", "a/test_b.py"])
def test_check_dist_knows_a_test_when_it_sees_one(name: str) -> None:
    assert _check_dist()._looks_like_a_test(name)
    assert not _check_dist()._looks_like_a_test("kling_async/testing/_emulator.py")
