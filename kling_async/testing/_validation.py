"""Field checks for create bodies; each failure is a 1201 whose message names the field.

Every check takes the object holding the field and the field's name; ``where`` prefixes the
name in messages for nested objects (``where="input."`` -> ``input.video_id``). JSON ``null``
counts as absent, as most servers read it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from typing import Any

from kling_async.testing._replies import ApiError

__all__ = [
    "BAD_BASE64",
    "optional_choice",
    "optional_id",
    "optional_image",
    "optional_int_in",
    "optional_number_in",
    "optional_object",
    "optional_text",
    "optional_unit_interval",
    "optional_url",
    "optional_watermark",
    "required_id",
    "required_text",
]

BAD_BASE64 = "File is not in a valid base64 format"  # Kling's observed message (8.8)


def present(body: Mapping[str, Any], name: str) -> bool:
    return body.get(name) is not None


def required_id(body: Mapping[str, Any], name: str, *, where: str = "") -> str:
    value = body.get(name)
    if value is None or value == "":
        raise ApiError.invalid(f"{where}{name} is required")
    if not isinstance(value, str):
        raise ApiError.invalid(f"{where}{name} must be a string")
    return value


def optional_id(body: Mapping[str, Any], name: str, *, where: str = "") -> str | None:
    """A caller-chosen id: a non-empty string, or absent (``""`` reads as absent)."""
    if not present(body, name) or body[name] == "":
        return None
    return required_id(body, name, where=where)


def optional_text(body: Mapping[str, Any], name: str, *, limit: int, where: str = "") -> str | None:
    if not present(body, name):
        return None
    value = body[name]
    if not isinstance(value, str):
        raise ApiError.invalid(f"{where}{name} must be a string")
    if len(value) > limit:
        raise ApiError.invalid(
            f"{where}{name} must be at most {limit} characters, got {len(value)}"
        )
    return value


def required_text(body: Mapping[str, Any], name: str, *, limit: int, where: str = "") -> str:
    """A non-empty string of at most ``limit`` characters."""
    value = optional_text(body, name, limit=limit, where=where)
    if not value:
        raise ApiError.invalid(f"{where}{name} is required")
    return value


def optional_choice(
    body: Mapping[str, Any], name: str, choices: Collection[str], *, where: str = ""
) -> str | None:
    """One of ``choices`` (strings, compared exactly), or absent."""
    if not present(body, name):
        return None
    value = body[name]
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(choices)
        raise ApiError.invalid(f"{where}{name} must be one of {listed}; got {value!r}")
    return value


def optional_number_in(
    body: Mapping[str, Any], name: str, low: float, high: float, *, where: str = ""
) -> float | None:
    """A JSON number (not a boolean, not a string) in ``[low, high]``."""
    if not present(body, name):
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError.invalid(f"{where}{name} must be a number in [{low:g}, {high:g}]")
    if not low <= value <= high:
        raise ApiError.invalid(f"{where}{name} must be in [{low:g}, {high:g}], got {value}")
    return float(value)


def optional_unit_interval(body: Mapping[str, Any], name: str) -> float | None:
    return optional_number_in(body, name, 0.0, 1.0)


def optional_int_in(
    body: Mapping[str, Any], name: str, low: int, high: int, *, where: str = ""
) -> int | None:
    """A JSON integer (``2.0`` and ``true`` are not) in ``[low, high]``."""
    if not present(body, name):
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError.invalid(f"{where}{name} must be an integer in [{low}, {high}]")
    return value


def optional_object(
    body: Mapping[str, Any], name: str, *, where: str = ""
) -> dict[str, Any] | None:
    if not present(body, name):
        return None
    value = body[name]
    if not isinstance(value, dict):
        raise ApiError.invalid(f"{where}{name} must be an object")
    return value


def optional_url(body: Mapping[str, Any], name: str, *, where: str = "") -> str | None:
    if not present(body, name):
        return None
    value = body[name]
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ApiError.invalid(f"{where}{name} must be an http(s) URL")
    return value


def optional_image(body: Mapping[str, Any], name: str, *, where: str = "") -> str | None:
    """An image (or other file) given as an http(s) URL or as raw base64 (kling-api.md 5.2,
    8.8): a ``data:`` prefix, or anything else that is not base64, is ``BAD_BASE64``.
    ``""`` reads as absent. The bytes are not inspected (format, size, pixels)."""
    if not present(body, name) or body[name] == "":
        return None
    value = body[name]
    if not isinstance(value, str):
        raise ApiError.invalid(f"{where}{name} must be a URL or a base64 string")
    if value.startswith(("http://", "https://")):
        return value
    try:
        decoded = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise ApiError.invalid(f"{where}{name}: {BAD_BASE64}")
    return value


def optional_watermark(body: Mapping[str, Any]) -> bool:
    """``watermark_info: {"enabled": bool}``; absent means no watermarked copy."""
    if not present(body, "watermark_info"):
        return False
    value = body["watermark_info"]
    enabled = value.get("enabled", False) if isinstance(value, dict) else None
    if not isinstance(enabled, bool):
        raise ApiError.invalid('watermark_info must be {"enabled": true|false}')
    return enabled
