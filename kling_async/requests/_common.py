"""What the request modules share: enums of the wire, converters and validators built on
:mod:`kling_async.requests._validators` (each failure a :class:`RequestValidationError` naming
the field)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs

from ..errors import RequestValidationError
from ..models import WatermarkInfo
from ._validators import Validator, bounded_text, number_in

__all__ = [
    "ASPECT_RATIOS",
    "CAMERA_TYPES",
    "DURATIONS",
    "IMAGE_ASPECT_RATIOS",
    "MODES",
    "count_in",
    "to_items",
    "optional_prompt",
    "to_duration",
    "to_float",
    "unit_interval",
    "watermark",
]

ASPECT_RATIOS = ("16:9", "9:16", "1:1")
IMAGE_ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9")
CAMERA_TYPES = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
MODES = ("std", "pro")
DURATIONS = ("5", "10")

T = TypeVar("T")


def watermark(value: Any) -> WatermarkInfo | None:
    """``watermark_info`` from a bool (or a :class:`WatermarkInfo`)."""
    if value is None or isinstance(value, WatermarkInfo):
        return value
    if isinstance(value, bool):
        return WatermarkInfo(enabled=value)
    raise RequestValidationError("watermark", f"must be a bool, got {type(value).__name__}")


def to_float(value: Any) -> Any:
    # ints are fine where floats are expected; everything else is left for the validator.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def to_duration(value: Any) -> Any:
    # The wire wants the string "5" or "10"; accept the number too.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


optional_prompt = bounded_text()
unit_interval = number_in(0.0, 1.0)


def to_items(cls: type[T], value: Any, field: str, shorthand: str | None = None) -> Any:
    """``value`` as a tuple of ``cls`` (for the converter of list ``field``): items may be
    ``cls`` objects, mappings of its fields, or (with ``shorthand``) a plain string for that
    one field (``image_list=["https://..."]``). ``None`` stays ``None``; anything else is left
    for the validator to refuse. An item's error names it (``image_list[0].image``)."""
    if value is None or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return value
    out = []
    for index, item in enumerate(value):
        try:
            if isinstance(item, str) and shorthand is not None:
                item = cls(**{shorthand: item})
            elif isinstance(item, Mapping):
                item = cls(**item)
        except RequestValidationError as exc:
            inner = exc.field.rsplit(".", 1)[-1]
            raise RequestValidationError(f"{field}[{index}].{inner}", exc.reason) from None
        except TypeError as exc:  # an unknown or missing key
            raise RequestValidationError(f"{field}[{index}]", str(exc)) from None
        out.append(item)
    return tuple(out)


def count_in(low: int, high: int, item: type | None = None) -> Validator:
    """A list of ``low`` to ``high`` items (of class ``item``); ``None`` passes (a required
    list says so with its own check)."""

    def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, tuple) or (
            item is not None and not all(isinstance(v, item) for v in value)
        ):
            what = f"{item.__name__} objects" if item is not None else "items"
            raise RequestValidationError(attribute.name, f"must be a list of {what}")
        if not low <= len(value) <= high:
            raise RequestValidationError(
                attribute.name, f"takes {low} to {high} items, got {len(value)}"
            )

    return validate
