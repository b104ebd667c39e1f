"""Field validators for create requests: each raises :class:`RequestValidationError` naming the
field, so bad input is refused before any network I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from typing import Any

import attrs
from yarl import URL

from ..errors import RequestValidationError

__all__ = [
    "MAX_PROMPT",
    "bounded_text",
    "choice",
    "http_url",
    "image_source",
    "number_in",
    "opt_id",
    "required_id",
]

MAX_PROMPT = 2500

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")
# 10 MB of image as base64 (4 characters per 3 bytes).
_MAX_BASE64 = (10 * 1024 * 1024 * 4) // 3 + 4


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise RequestValidationError(name, f"must be a string, got {type(value).__name__}")
    return value


def opt_id(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An optional id: a non-empty string without surrounding white space."""
    if value is None:
        return
    value = _string(attribute.name, value)
    if not value.strip():
        raise RequestValidationError(attribute.name, "must not be empty")
    if value != value.strip():
        raise RequestValidationError(attribute.name, "must not start or end with white space")


def required_id(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        raise RequestValidationError(attribute.name, "is required")
    opt_id(inst, attribute, value)


def bounded_text(*, limit: int = MAX_PROMPT, required: bool = False) -> Validator:
    """A string of at most ``limit`` characters (``required``: present and not blank)."""

    def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            if required:
                raise RequestValidationError(attribute.name, "is required")
            return
        value = _string(attribute.name, value)
        if required and not value.strip():
            raise RequestValidationError(attribute.name, "must not be empty")
        if len(value) > limit:
            raise RequestValidationError(
                attribute.name, f"is {len(value)} characters; at most {limit} are allowed"
            )

    return validate


def number_in(low: float, high: float, *, integer: bool = False) -> Validator:
    """An optional number in ``[low, high]`` (booleans and NaN refused)."""

    def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            what = "an integer" if integer else "a number"
            raise RequestValidationError(
                attribute.name, f"must be {what}, got {type(value).__name__}"
            )
        if not (math.isfinite(value) and low <= value <= high):
            raise RequestValidationError(
                attribute.name, f"must be in [{low:g}, {high:g}], got {value!r}"
            )

    return validate


def choice(values: Collection[str]) -> Validator:
    """An optional string from ``values``."""

    def validate(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if value not in values:
            allowed = ", ".join(repr(v) for v in values)
            raise RequestValidationError(attribute.name, f"must be one of {allowed}, got {value!r}")

    return validate


def http_url(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An optional absolute http(s) URL."""
    if value is None:
        return
    value = _string(attribute.name, value)
    try:
        parsed = URL(value)
    except ValueError:
        raise RequestValidationError(attribute.name, "is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise RequestValidationError(attribute.name, "must be an absolute http(s) URL")


def image_source(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An optional image: an http(s) URL, or raw base64 *without* a ``data:`` prefix (Kling
    answers a prefixed one with 1201 "File is not in a valid base64 format")."""
    if value is None:
        return
    value = _string(attribute.name, value)
    if value.startswith(("http://", "https://")):
        http_url(inst, attribute, value)
        return
    if value.startswith("data:"):
        raise RequestValidationError(
            attribute.name,
            "must be raw base64 without a 'data:...;base64,' prefix (Kling rejects the prefix)",
        )
    if not value.strip():
        raise RequestValidationError(attribute.name, "must not be empty")
    if len(value) > _MAX_BASE64:
        raise RequestValidationError(attribute.name, "is larger than the 10 MB Kling accepts")
    if not _BASE64.fullmatch(value):
        raise RequestValidationError(attribute.name, "is neither an http(s) URL nor base64")
