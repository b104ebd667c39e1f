"""Basic checks of images sent as base64, behind the emulator's ``check_images`` knob.

kling-api.md 5.2 (image2video, and the same rules for the other image fields): jpg/jpeg/png,
at most 10 MB, at least 300 px on each side, aspect ratio between 1:2.5 and 2.5:1. The format
is read from the magic bytes and the size from the PNG ``IHDR`` or the JPEG ``SOFn`` header,
never from a name or a claimed type. An image given as a URL is not fetched (the emulator
reaches no network but loopback): only its scheme is checked, as without the knob.

When the real service applies these is not documented (gotcha 8.1 shows a *failed task*
"Image pixel is invalid"), so the knob plays either reading: ``"refuse"`` answers the create
with 1201/400 naming the field; ``"fail"`` accepts it and the task ends ``failed`` with that
message.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["ImageCheck", "image_problem"]

ImageCheck = Literal["refuse", "fail"]

MAX_BYTES = 10 * 1024 * 1024
MIN_SIDE = 300
MAX_ASPECT = 2.5
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers, not DHT/JPG/DAC


def image_problem(body: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """What is wrong with the first bad base64 image among ``fields`` (dotted for nested);
    ``None`` if all pass or are URLs."""
    for field in fields:
        value = _lookup(body, field)
        if not isinstance(value, str) or not value or value.startswith(("http://", "https://")):
            continue
        try:
            raw = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            continue  # the field validator already refused it
        problem = _problem(raw)
        if problem is not None:
            return f"{field}: {problem}"
    return None


def _lookup(body: Mapping[str, Any], field: str) -> object:
    value: object = body
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _problem(raw: bytes) -> str | None:
    if len(raw) > MAX_BYTES:
        return f"image is {len(raw)} bytes; at most {MAX_BYTES} (10 MB)"
    if raw.startswith(_PNG):
        size = _png_size(raw)
    elif raw.startswith(_JPEG):
        size = _jpeg_size(raw)
    else:
        return "image format is not supported; use jpg, jpeg or png"
    if size is None:
        return "Image pixel is invalid: the image header cannot be read"
    width, height = size
    if min(width, height) < MIN_SIDE:
        return f"Image pixel is invalid: {width}x{height}; each side must be >= {MIN_SIDE}px"
    if max(width, height) > MAX_ASPECT * min(width, height):
        return f"Image pixel is invalid: aspect {width}x{height} is outside 1:2.5 to 2.5:1"
    return None


def _png_size(raw: bytes) -> tuple[int, int] | None:
    if len(raw) < 24 or raw[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", raw[16:24])
    return int(width), int(height)


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(raw):
        if raw[at] != 0xFF:
            return None
        marker = raw[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length: standalone markers
            at += 2
            continue
        (length,) = struct.unpack(">H", raw[at + 2 : at + 4])
        if marker in _SOF:
            if at + 9 > len(raw):
                return None
            height, width = struct.unpack(">HH", raw[at + 5 : at + 9])
            return int(width), int(height)
        at += 2 + length
    return None
