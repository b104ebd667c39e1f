"""Check the built distributions: ``python scripts/check_dist.py [DIST_DIR]`` (default ``dist``).

The test command builds the wheel and the sdist (``python -m build``), then runs this. It
fails, saying what is wrong, unless the directory holds this version's wheel and sdist and:

- the wheel ships every file of ``kling_async/`` (``py.typed`` among them: the package is
  typed) and nothing else but its ``.dist-info``, whose metadata carries the licence file,
  ``Requires-Python`` and a classifier for each Python it claims;
- the sdist holds the package, ``pyproject.toml``, ``README.md``, ``LICENSE`` and
  ``CHANGELOG.md``, and no tests, benchmarks or docs site.

Standard library only, Python 3.10 or later.
"""

from __future__ import annotations

import email.parser
import re
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "kling_async"
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
SDIST_FILES = ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO")


def _version() -> str:
    text = (ROOT / PACKAGE / "_version.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no __version__ in {PACKAGE}/_version.py")
    return found.group(1)


def _source_files() -> set[str]:
    """Every file of the package in the working tree, as ``kling_async/...`` paths."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _looks_like_a_test(name: str) -> bool:
    parts = name.split("/")
    leaf = parts[-1]
    return (
        any(part in ("tests", "test", "benchmarks") for part in parts[:-1])
        or leaf == "conftest.py"
        or (leaf.startswith("test_") and leaf.endswith(".py"))
    )


def check_wheel(path: Path) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        info = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        metadata = wheel.read(info).decode() if info else ""
    shipped = {n for n in names if n.startswith(f"{PACKAGE}/")}
    others = {n for n in names - shipped if ".dist-info/" not in n}
    if others:
        problems.append(f"the wheel ships files outside {PACKAGE}/: {sorted(others)}")
    if f"{PACKAGE}/py.typed" not in shipped:
        problems.append(f"the wheel has no {PACKAGE}/py.typed")
    missing = _source_files() - shipped
    if missing:
        problems.append(f"the wheel lacks files of the package: {sorted(missing)}")
    tests = sorted(n for n in names if _looks_like_a_test(n))
    if tests:
        problems.append(f"the wheel ships tests: {tests}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("the wheel carries no LICENSE")
    fields = email.parser.Parser().parsestr(metadata)
    if fields.get("Requires-Python") != f">={PYTHONS[0]}":
        problems.append(f"Requires-Python is {fields.get('Requires-Python')!r}")
    classifiers = set(fields.get_all("Classifier") or [])
    for python in PYTHONS:
        if f"Programming Language :: Python :: {python}" not in classifiers:
            problems.append(f"no classifier for Python {python}")
    if "Typing :: Typed" not in classifiers:
        problems.append("no 'Typing :: Typed' classifier")
    if fields.get("License-Expression") != "MIT":
        problems.append(f"License-Expression is {fields.get('License-Expression')!r}")
    return problems


def check_sdist(path: Path, version: str) -> list[str]:
    problems: list[str] = []
    top = f"{PACKAGE}-{version}"
    with tarfile.open(path) as sdist:
        names = {m.name for m in sdist.getmembers() if m.isfile()}
    outside = sorted(n for n in names if not n.startswith(top + "/"))
    if outside:
        problems.append(f"the sdist has files outside {top}/: {outside}")
    inner = {n.removeprefix(top + "/") for n in names}
    for required in (*SDIST_FILES, f"{PACKAGE}/py.typed"):
        if required not in inner:
            problems.append(f"the sdist has no {required}")
    missing = _source_files() - inner
    if missing:
        problems.append(f"the sdist lacks files of the package: {sorted(missing)}")
    tests = sorted(n for n in inner if _looks_like_a_test(n) or n.split("/")[0] == "docs")
    if tests:
        problems.append(f"the sdist ships tests or the docs site: {tests[:10]}")
    return problems


def main(argv: list[str]) -> int:
    dist = Path(argv[1]) if len(argv) > 1 else ROOT / "dist"
    version = _version()
    wheels = sorted(dist.glob(f"{PACKAGE}-{version}-*.whl"))
    sdists = sorted(dist.glob(f"{PACKAGE}-{version}.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(
            f"check_dist: want one wheel and one sdist of {PACKAGE} {version} in {dist}, found "
            f"{[p.name for p in wheels + sdists]} (build them: python -m build)",
            file=sys.stderr,
        )
        return 1
    problems = check_wheel(wheels[0]) + check_sdist(sdists[0], version)
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_dist: {wheels[0].name} and {sdists[0].name} are complete, typed and test-free")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
