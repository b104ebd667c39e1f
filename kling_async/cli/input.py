"""Batch input files for ``kling-async batch``: JSON Lines or CSV rows of create requests.

Each row is a request of its ``kind`` (``batch --kind``'s, else ``video-extend``, when it names
none); every row is built
(``_fields.build_request``) before anything is sent, so a typo on line 900 stops the run
before line 1 costs money. Errors name the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ..errors import RequestValidationError
from ..requests import CreateRequest
from ..requests.fields import all_field_names, build_request

__all__ = ["InputError", "InputErrors", "Row", "read_requests"]

KIND = "kind"  # the column saying which kind of request a row is
DEFAULT_KIND = "video-extend"
MAX_ERRORS = 20


@attrs.frozen
class Row:
    """One request of the input file and the line it starts on (1-based)."""

    line: int
    request: CreateRequest


@attrs.frozen
class InputError:
    """What is wrong with one row: ``path:line: field: message``."""

    path: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "field": self.field, "reason": self.message}


class InputErrors(Exception):
    """The input file cannot be used; ``errors`` lists what is wrong (the first few)."""

    def __init__(self, errors: list[InputError], more: int = 0) -> None:
        self.errors = errors
        self.more = more
        super().__init__("\n".join(str(e) for e in errors))


class _RowError(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message


def read_requests(path: Path, *, default_kind: str | None = None) -> list[Row]:
    """Every row of ``path`` as a validated request; :class:`InputErrors` if any row is bad.
    A row without a ``kind`` is of ``default_kind`` (``None``: video-extend).

    The format follows the extension (``.csv``; ``.jsonl``/``.ndjson``/``.json``), else the
    first character (``{`` is JSON Lines).
    """
    name = str(path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputErrors([InputError(name, None, None, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputErrors([InputError(name, None, None, f"cannot be read: {exc}")]) from None
    csv_cells = _is_csv(path, content)  # text, read as what their fields take
    rows = _csv_rows(content) if csv_cells else _jsonl_rows(content)
    good: list[Row] = []
    errors: list[InputError] = []
    more = 0
    external: dict[str, int] = {}
    for line, fields in rows:
        try:
            if isinstance(fields, _RowError):
                raise fields
            request = _request(fields, text=csv_cells, default=default_kind or DEFAULT_KIND)
            external_id = getattr(request, "external_task_id", None)
            if external_id is not None:
                first = external.setdefault(external_id, line)
                if first != line:
                    raise _RowError(
                        "external_task_id", f"{external_id!r} is already used on line {first}"
                    )
            good.append(Row(line, request))
        except _RowError as exc:
            if len(errors) < MAX_ERRORS:
                errors.append(InputError(name, line, exc.field, exc.message))
            else:
                more += 1
    if errors:
        raise InputErrors(errors, more)
    if not good:
        raise InputErrors([InputError(name, None, None, "has no requests")])
    return good


def _is_csv(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return True
    if suffix in (".jsonl", ".ndjson", ".json"):
        return False
    return not text.lstrip().startswith("{")


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | _RowError]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, _RowError(None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield number, _RowError(None, f"expected a JSON object, got {type(value).__name__}")
            continue
        yield number, {k: v for k, v in value.items() if v is not None}


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | _RowError]]:
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader)
    except StopIteration:
        return
    names = [h.strip() for h in header]
    known = (*all_field_names(), KIND)
    for name in names:
        if name and name not in known:
            yield 1, _RowError(name, f"unknown field; expected one of: {', '.join(known)}")
            return
    start = reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(names):
            yield line, _RowError(None, f"{len(cells)} cells but the header has {len(names)}")
            continue
        yield line, {n: c for n, c in zip(names, cells, strict=False) if n and c.strip()}


def _request(fields: dict[str, Any], *, text: bool, default: str) -> CreateRequest:
    kind = fields.pop(KIND, default)
    if text:
        kind = kind.strip()
    try:
        return build_request(kind, fields, text=text)
    except RequestValidationError as exc:
        raise _RowError(exc.field, exc.reason) from None
