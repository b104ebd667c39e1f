"""Request bodies: wire names out, ``None`` fields left out, and back from a journal validated.

Kept apart from the answers' records: writing is strict (a request is validated before any
network I/O), reading answers is tolerant.
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
from cattrs.errors import BaseValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..errors import RequestValidationError
from ..requests import NESTED_TYPES, REQUEST_TYPES, CameraConfig, CreateRequest, Trajectory
from .converter import _converter

__all__ = ["request_from_wire", "unstructure_request"]

def unstructure_request(request: CreateRequest) -> dict[str, Any]:
    """A request body: wire names, ``None`` fields left out (nested objects too)."""
    body: dict[str, Any] = _converter.unstructure(request)
    return body


def request_from_wire(kind: str, body: dict[str, Any]) -> CreateRequest:
    """Rebuild a request from its body (as :func:`unstructure_request` made it), validating it
    again: how a journal brings a request back after a crash."""
    cls = REQUEST_TYPES.get(kind)
    if cls is None:
        raise RequestValidationError("kind", f"unknown request kind {kind!r}")
    try:
        request: CreateRequest = _converter.structure(body, cls)
    except Exception as exc:
        found = _first_validation_error(exc)
        if found is not None:
            raise found from exc
        raise RequestValidationError("request", "; ".join(cattrs.transform_error(exc))) from exc
    return request


def _first_validation_error(exc: BaseException) -> RequestValidationError | None:
    """The field error inside cattrs' exception group, if a validator raised one."""
    if isinstance(exc, RequestValidationError):
        return exc
    if isinstance(exc, BaseValidationError):
        for inner in exc.exceptions:
            found = _first_validation_error(inner)
            if found is not None:
                return found
    return None


def _register_request(cls: type) -> None:
    """Requests go out with ``None`` fields left out and wire names (``parent_task_id`` is the
    relay's ``task_id``), and come back (from a journal) the same way."""
    renames: dict[str, str] = getattr(cls, "__wire_names__", {})
    always: frozenset[str] = getattr(cls, "__always_sent__", frozenset())  # required on the wire
    out: dict[str, Any] = {
        a.name: override(omit_if_default=a.name not in always, rename=renames.get(a.name))
        for a in attrs.fields(cls)
    }
    back: dict[str, Any] = {a.name: override(rename=renames.get(a.name)) for a in attrs.fields(cls)}
    _converter.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, _converter, **out))
    _converter.register_structure_hook(cls, make_dict_structure_fn(cls, _converter, **back))


# Nested parts first: the request hooks capture theirs when they are made. CameraConfig and
# Trajectory keep the default (every field, zeros included: one axis moves, the rest are 0).
_KEEP_ZEROS = (CameraConfig, Trajectory)
for _cls in (*(c for c in NESTED_TYPES if c not in _KEEP_ZEROS), *REQUEST_TYPES.values()):
    _register_request(_cls)
