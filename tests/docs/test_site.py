"""The site's sources: README links into it resolve, and the CLI reference is generated from
the parser (the build itself, ``mkdocs build --strict``, is part of the test command)."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from kling_async.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[2]


def hook() -> ModuleType:
    path = ROOT / "docs" / "_hooks" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference_hook", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_links_into_the_site_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert len(links) >= 10, links
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README.md links to missing pages: {missing}"
    assert "mkdocs serve" in readme


def test_the_cli_reference_is_the_parsers_help() -> None:
    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    module = hook()
    assert module.MARKER in page
    rendered = module.render()
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert f"## kling-async {name}\n" in rendered
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:  # hidden from --help, so from the page too
                continue
            for flag in action.option_strings:
                assert flag in rendered, (name, flag)


def test_the_hook_refuses_a_page_without_its_marker() -> None:
    module = hook()

    def page(src_uri: str) -> object:
        return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))

    with pytest.raises(ValueError, match="marker"):
        module.on_page_markdown("# no marker", page("reference/cli.md"))
    assert module.on_page_markdown("other pages pass", page("index.md")) == "other pages pass"
