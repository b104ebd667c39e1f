"""MkDocs hook: the CLI reference page is generated from the argparse parser.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it
with the ``--help`` of ``kling-async`` and of each command, as ``build_parser()`` makes them, so
the page cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

MARKER = "<!-- cli-reference -->"


def _help(parser: argparse.ArgumentParser) -> str:
    return f"```text\n{parser.format_help().rstrip()}\n```\n"


def render() -> str:
    from kling_async.cli.parser import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page is fixed width
    parser = build_parser()
    parts = ["## kling-async\n", _help(parser)]
    for action in parser._actions:  # argparse has no public way to list sub-commands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"## kling-async {name}\n", _help(sub)]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "reference/cli.md":
        if MARKER not in markdown:
            raise ValueError(f"{page.file.src_uri} lost its {MARKER} marker")
        return markdown.replace(MARKER, render())
    return markdown
