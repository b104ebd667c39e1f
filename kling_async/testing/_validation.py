"""Field checks for create bodies; each failure is a 1201 whose message names the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kling_async.testing._replies import ApiError

__all__ = [
    "optional_id",
    "optional_text",
    "optional_unit_interval",
    "optional_url",
    "optional_watermark",
    "required_id",
]


def _present(body: Mapping[str, Any], name: str) -> bool:
    """JSON ``null`` counts as absent, as most servers read it."""
    return body.get(name) is not None


def required_id(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise ApiError.invalid(f"{name} is required")
    if not isinstance(value, str):
        raise ApiError.invalid(f"{name} must be a string")
    return value


def optional_id(body: Mapping[str, Any], name: str) -> str | None:
    """A caller-chosen id: a non-empty string, or absent (``""`` reads as absent)."""
    if not _present(body, name) or body[name] == "":
        return None
    return required_id(body, name)


def optional_text(body: Mapping[str, Any], name: str, *, limit: int) -> str | None:
    if not _present(body, name):
        return None
    value = body[name]
    if not isinstance(value, str):
        raise ApiError.invalid(f"{name} must be a string")
    if len(value) > limit:
        raise ApiError.invalid(f"{name} must be at most {limit} characters, got {len(value)}")
    return value


def optional_unit_interval(body: Mapping[str, Any], name: str) -> float | None:
    if not _present(body, name):
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError.invalid(f"{name} must be a number in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise ApiError.invalid(f"{name} must be in [0, 1], got {value}")
    return float(value)


def optional_url(body: Mapping[str, Any], name: str) -> str | None:
    if not _present(body, name):
        return None
    value = body[name]
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ApiError.invalid(f"{name} must be an http(s) URL")
    return value


def optional_watermark(body: Mapping[str, Any]) -> bool:
    """``watermark_info: {"enabled": bool}``; absent means no watermarked copy."""
    if not _present(body, "watermark_info"):
        return False
    value = body["watermark_info"]
    enabled = value.get("enabled", False) if isinstance(value, dict) else None
    if not isinstance(enabled, bool):
        raise ApiError.invalid('watermark_info must be {"enabled": true|false}')
    return enabled
