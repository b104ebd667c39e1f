"""The ``{code, message, request_id, data}`` envelope every answer comes in, read fast.

Its ``data`` is left as JSON for the record shape that reads it (:mod:`.records`); a body that
is no envelope at all is a :class:`ResponseFormatError`, never a crash.
"""

from __future__ import annotations

from typing import Any

from cattrs.gen import override

from ..errors import ResponseFormatError, excerpt
from ..models import Envelope
from .converter import _converter, _format_error, _opt_text, _register, _text, json_excerpt

__all__ = ["structure_envelope"]

_register(
    Envelope,
    message=override(struct_hook=_text),
    request_id=override(struct_hook=_opt_text),
)


def _fast_envelope(payload: dict[str, Any]) -> Envelope:
    code = payload["code"]
    if type(code) is not int:
        raise TypeError("code")
    message = payload.get("message")
    # Absent and null differ, as with the converter: absent is the default "", null is read by
    # the hook (as None, whatever the annotation says).
    request_id = payload.get("request_id", "")
    return Envelope(
        code=code,
        message=message if type(message) is str else _text(message, None),
        request_id=request_id if type(request_id) is str else _opt_text(request_id, None),  # type: ignore[arg-type]
        data=payload.get("data"),
    )


def structure_envelope(payload: Any, *, http_status: int | None = None) -> Envelope:
    """Read the ``{code, message, request_id, data}`` envelope (``data`` left as JSON)."""
    request_id = payload.get("request_id") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or "code" not in payload:
        raise ResponseFormatError(
            "response is not a Kling envelope (no 'code')",
            http_status=http_status,
            request_id=request_id if isinstance(request_id, str) else None,
            body_excerpt=excerpt(json_excerpt(payload)),
            path="$",
        )
    try:
        return _fast_envelope(payload)
    except Exception:
        pass  # not the common shape: cattrs reads it, or says exactly what is wrong
    try:
        return _converter.structure(payload, Envelope)
    except Exception as exc:
        raise _format_error(
            exc, root="$", request_id=None, http_status=http_status, body=payload
        ) from exc
