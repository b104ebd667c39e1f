"""Create requests from named fields: mappings given to ``extend_many``, the client's shortcuts
(``text_to_video(prompt, **fields)``...), command-line flags and batch-file rows.

``build_request(kind, fields)`` builds the request class of ``kind`` field by field. serde's
converter is not used for this: it reads journals and API answers and is made to be lenient
(``n: 2.5`` would become 2, a prompt ``5`` the text "5", unknown keys are dropped). Here a value
is taken as given, so a wrong type, an unknown field or an unknown key of a nested object
(``camera_control``, ``dynamic_masks``, a lip-sync ``input``) is a :class:`RequestValidationError`
naming it, and nested objects given as mappings become their request classes (validated like
the rest). ``text=True`` first reads string values as what their field takes (CSV cells and
flags are text): numbers, ``true``/``false``, JSON for nested objects.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import RequestValidationError
from ..models import WatermarkInfo
from . import NESTED_TYPES, REQUEST_TYPES, CreateRequest

__all__ = ["KIND_NAMES", "all_field_names", "build_request", "describe_fields", "field_names"]

KIND_NAMES = tuple(REQUEST_TYPES)

# The name files and flags use where it differs from the attribute (as ``--watermark`` does).
_NAMES = {"watermark_info": "watermark"}
_NESTED = NESTED_TYPES
# Free text is kept as written; other text values (ids, URLs, choices, base64) lose blanks.
_FREE_TEXT = frozenset({"prompt", "negative_prompt", "text"})
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


@attrs.frozen
class _Field:
    attribute: str
    type: Any  # without None: str, float, int, WatermarkInfo, a nested class, tuple[class, ...]
    required: bool


def _read_fields(cls: type) -> dict[str, _Field]:
    hints = typing.get_type_hints(cls)
    fields = {}
    for a in attrs.fields(cls):
        hint = hints[a.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            (hint,) = (t for t in typing.get_args(hint) if t is not type(None))
        fields[_NAMES.get(a.name, a.name)] = _Field(a.name, hint, a.default is attrs.NOTHING)
    return fields


_FIELDS = {cls: _read_fields(cls) for cls in (*REQUEST_TYPES.values(), *_NESTED)}


def _fields(cls: type) -> dict[str, _Field]:
    """The fields of ``cls`` by the name files and flags use."""
    return _FIELDS[cls]


def _aliases(cls: type) -> dict[str, str]:
    """Other names accepted for fields: wire names (video-extend's ``task_id``) and attribute
    names where files and flags use another (``watermark_info``)."""
    renames: dict[str, str] = getattr(cls, "__wire_names__", {})
    aliases = {wire: _NAMES.get(attribute, attribute) for attribute, wire in renames.items()}
    names = attrs.fields_dict(cls)
    aliases.update({a: name for a, name in _NAMES.items() if a in names})
    return aliases


def field_names(kind: str) -> tuple[str, ...]:
    """The fields a request of ``kind`` takes."""
    return tuple(_fields(REQUEST_TYPES[kind]))


def all_field_names() -> tuple[str, ...]:
    """Every field any kind takes, and the other names some go by (what a CSV header may
    name)."""
    names = (n for cls in REQUEST_TYPES.values() for n in (*_fields(cls), *_aliases(cls)))
    return tuple(dict.fromkeys(names))


def describe_fields(kind: str) -> str:
    """``video_id (required), parent_task_id (or task_id), ...``: for help texts."""
    cls = REQUEST_TYPES[kind]
    other = {name: alias for alias, name in _aliases(cls).items()}
    return ", ".join(
        name
        + (" (required)" if field.required else "")
        + (f" (or {other[name]})" if name in other else "")
        for name, field in _fields(cls).items()
    )


def build_request(kind: Any, fields: Mapping[str, Any], *, text: bool = False) -> CreateRequest:
    """The request of ``kind`` with ``fields``; :class:`RequestValidationError` names what is
    wrong (``kind``, or the field as spelled in ``fields``, nested ones as ``a.b[0].c``)."""
    cls = REQUEST_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise RequestValidationError(
            "kind", f"unknown kind {kind!r}; expected one of: {', '.join(KIND_NAMES)}"
        )
    request: CreateRequest = _build(cls, fields, text=text, path="", owner=kind)
    return request


def _build(cls: type, values: Mapping[str, Any], *, text: bool, path: str, owner: str) -> Any:
    known, aliases = _fields(cls), _aliases(cls)
    kwargs: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # attribute -> the name used
    for name, value in values.items():
        canonical = aliases.get(name, name)
        field = known.get(canonical)
        if field is None:
            takes = ", ".join((*known, *aliases))
            raise RequestValidationError(f"{path}{name}", f"unknown field; {owner} takes: {takes}")
        if field.attribute in kwargs:
            other = next(a for a, c in aliases.items() if c == canonical)
            raise RequestValidationError(
                f"{path}{name}", f"given twice ({other} is another name for {canonical})"
            )
        where = f"{path}{name}"
        if text and isinstance(value, str):
            value = _from_text(field, value, where)
        kwargs[field.attribute] = _nested(field.type, value, where, text=text)
        spelled[field.attribute] = name
    for name, field in known.items():
        if field.required and field.attribute not in kwargs:
            raise RequestValidationError(f"{path}{name}", "is required")
    try:
        return cls(**kwargs)
    except RequestValidationError as exc:
        # Dotted names are already full paths (the requests' cross-field checks write them).
        where = exc.field if "." in exc.field else path + spelled.get(exc.field, exc.field)
        raise RequestValidationError(where, exc.reason) from None


def _nested(hint: Any, value: Any, where: str, *, text: bool) -> Any:
    """``value`` as the nested object(s) ``hint`` names; other values as they are.

    An object that already is of the nested class is taken as it is (it validated itself when
    it was made), so callers may mix objects and mappings."""
    if hint in _NESTED:
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise RequestValidationError(
                where, f"must be a JSON object, got {type(value).__name__}"
            )
        return _build(hint, value, text=False, path=f"{where}.", owner=where)
    item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
    if item in _NESTED:
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (Mapping, item, str)) for v in value
        ):
            raise RequestValidationError(where, "must be a list of JSON objects")
        # A string item is the one-field shorthand some lists take (image_list=["https://..."]);
        # the request's converter reads it, or refuses it naming the list.
        return [
            v
            if isinstance(v, (item, str))
            else _build(item, v, text=False, path=f"{where}[{i}].", owner=where)
            for i, v in enumerate(value)
        ]
    return value


def _from_text(field: _Field, cell: str, where: str) -> Any:
    """A text value as the value its field takes."""
    hint = field.type
    if hint is float:
        try:
            number = float(cell)
        except ValueError:
            raise RequestValidationError(where, f"must be a number, got {cell!r}") from None
        if not math.isfinite(number):
            raise RequestValidationError(where, f"must be a finite number, got {cell!r}")
        return number
    if hint is int:
        try:
            return int(cell)
        except ValueError:
            raise RequestValidationError(where, f"must be an integer, got {cell!r}") from None
    if hint is WatermarkInfo:  # the request turns a bool into WatermarkInfo
        word = cell.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise RequestValidationError(where, f"must be true or false, got {cell!r}")
    if hint is str:
        return cell if field.attribute in _FREE_TEXT else cell.strip()
    try:  # a nested object (or a list of them), written as JSON
        return json.loads(cell)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            where, f"must be JSON ({exc.msg} at column {exc.colno})"
        ) from None
