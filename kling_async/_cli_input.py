"""Batch input files for ``kling-async batch``: JSON Lines or CSV rows of video-extend requests.

Every row is turned into a :class:`VideoExtendRequest` before anything is sent, so a typo on
line 900 stops the run before line 1 costs money. Errors name the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import RequestValidationError
from .requests import VideoExtendRequest

__all__ = ["COLUMNS", "InputError", "InputErrors", "Row", "read_requests"]

#: The columns (JSON keys) a row may have; ``task_id`` is accepted for ``parent_task_id``.
COLUMNS = (
    "video_id",
    "parent_task_id",
    "prompt",
    "negative_prompt",
    "cfg_scale",
    "callback_url",
    "external_task_id",
    "watermark",
)
_ALIASES = {"task_id": "parent_task_id"}
_KIND = "kind"  # reserved: one file may one day mix task kinds
_KINDS = ("video-extend",)
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")
MAX_ERRORS = 20


@attrs.frozen
class Row:
    """One request of the input file and the line it starts on (1-based)."""

    line: int
    request: VideoExtendRequest


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

    def to_json(self) -> dict[str, Any]:
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


def read_requests(path: Path) -> list[Row]:
    """Every row of ``path`` as a validated request; :class:`InputErrors` if any row is bad.

    The format follows the extension (``.csv``; ``.jsonl``/``.ndjson``/``.json``), else the
    first character (``{`` is JSON Lines).
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputErrors([InputError(name, None, None, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputErrors([InputError(name, None, None, f"cannot be read: {exc}")]) from None
    rows = _csv_rows(text) if _is_csv(path, text) else _jsonl_rows(text)
    good: list[Row] = []
    errors: list[InputError] = []
    more = 0
    external: dict[str, int] = {}
    for line, fields in rows:
        try:
            if isinstance(fields, _RowError):
                raise fields
            request = _request(fields)
            if request.external_task_id is not None:
                first = external.setdefault(request.external_task_id, line)
                if first != line:
                    raise _RowError(
                        "external_task_id",
                        f"{request.external_task_id!r} is already used on line {first}",
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
    for name in names:
        if name and _column(name) is None:
            yield 1, _unknown(name)
            return
    start = reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(names):
            yield line, _RowError(None, f"{len(cells)} cells but the header has {len(names)}")
            continue
        fields: dict[str, Any] = {}
        try:
            for name, cell in zip(names, cells, strict=False):
                if name and cell.strip():
                    fields[name] = _from_text(name, cell)
        except _RowError as exc:
            yield line, exc
            continue
        yield line, fields


def _column(name: str) -> str | None:
    if name in COLUMNS or name == _KIND:
        return name
    return _ALIASES.get(name)


def _unknown(name: str) -> _RowError:
    known = ", ".join((*COLUMNS, *_ALIASES, _KIND))
    return _RowError(name, f"unknown field; expected one of: {known}")


def _from_text(name: str, cell: str) -> Any:
    """A CSV cell as the value its column takes."""
    column = _column(name)
    if column == "cfg_scale":
        try:
            number = float(cell)
        except ValueError:
            raise _RowError(name, f"must be a number, got {cell!r}") from None
        if not math.isfinite(number):
            raise _RowError(name, f"must be a finite number, got {cell!r}")
        return number
    if column == "watermark":
        word = cell.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _RowError(name, f"must be true or false, got {cell!r}")
    if column in ("video_id", "parent_task_id", "external_task_id", "callback_url", _KIND):
        return cell.strip()
    return cell


def _request(fields: Mapping[str, Any]) -> VideoExtendRequest:
    kwargs: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # attribute -> the name the file used
    for name, value in fields.items():
        column = _column(name)
        if column is None:
            raise _unknown(name)
        if column == _KIND:
            if value not in _KINDS:
                raise _RowError(
                    _KIND,
                    f"{value!r} is not supported: only 'video-extend' for now "
                    "(the column is reserved for more task kinds)",
                )
            continue
        if column in kwargs:
            raise _RowError(name, "given twice (task_id is another name for parent_task_id)")
        attribute = "watermark_info" if column == "watermark" else column
        kwargs[attribute] = value
        spelled[attribute] = name
    if "video_id" not in kwargs:
        raise _RowError("video_id", "is required")
    try:
        return VideoExtendRequest(**kwargs)
    except RequestValidationError as exc:
        field = "watermark" if exc.field == "watermark_info" else exc.field
        raise _RowError(spelled.get(exc.field, field), exc.reason) from None
