"""The one converter between JSON and kling_async's attrs classes.

Reading is tolerant (unknown keys ignored, ``null`` lists read as empty, numeric ids read as
strings, duration strings read as numbers); a wrong shape raises :class:`ResponseFormatError`
naming the JSON path and carrying the ``request_id``. Writing is strict: ``None`` fields are left
out of request bodies. orjson is used when installed.

One module, though past 400 lines: the fast path for well-formed answers must mirror the
converter's hooks field by field, and reading the two side by side is how a change to one is
made to the other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import BaseValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ..account import ResourcePack, ResourcePacks
from ..errors import RequestValidationError, ResponseFormatError, api_error, excerpt
from ..models import (
    Envelope,
    Face,
    FaceIdentification,
    Image,
    ParentVideo,
    Task,
    TaskInfo,
    TaskResult,
    TaskStatus,
    Video,
    WatermarkInfo,
)
from ..requests import NESTED_TYPES, REQUEST_TYPES, CameraConfig, CreateRequest, Trajectory

__all__ = [
    "dumps",
    "loads",
    "request_from_wire",
    "structure_envelope",
    "structure_faces",
    "structure_resource_packs",
    "structure_task",
    "structure_tasks",
    "task_to_json",
    "unstructure_request",
]

T = TypeVar("T")


def _stdlib_loads(data: bytes | str) -> Any:
    """``json.loads``, with too deep nesting reported like any other bad JSON (a ValueError):
    a server choosing how deep its answer nests must not raise RecursionError in our caller."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def json_excerpt(body: Any) -> str:
    """The start of ``body`` as JSON for an error excerpt (never failing on a hostile value)."""
    try:
        return json.dumps(body, default=str)[:400]
    except (RecursionError, ValueError):
        return "<unprintable JSON value>"


try:  # orjson is several times faster on the hot path (every poll decodes one envelope).
    import orjson

    loads: Callable[[bytes | str], Any] = orjson.loads

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - exercised in environments without orjson
    loads = _stdlib_loads

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


_converter = cattrs.Converter(detailed_validation=True)


def _id(value: Any, _: Any) -> str:
    # Ids are opaque strings; a relay that sends an 18-digit id as a JSON number must not lose
    # it (floats would round it), so only exact integers are accepted besides strings.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string id, got {type(value).__name__}")


def _text(value: Any, _: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _opt_text(value: Any, _: Any) -> str | None:
    return None if value is None else _text(value, _)


def _seconds(value: Any, _: Any) -> float | None:
    # Durations are strings of seconds on the wire ("5.1"); some relays send numbers.
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite duration, got {value!r}")
    return number


def _millis(value: Any, _: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a millisecond timestamp, got {type(value).__name__}")
    return int(value)


def _units(value: Any, _: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected units as a string, got {type(value).__name__}")


def _quantity(value: Any, _: Any) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number of units, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number of units, got {value!r}")
    return number


def _tuple_of(item: type[T]) -> Callable[[Any, Any], tuple[T, ...]]:
    # cattrs' own tuple hook reports the failing index in the JSON path; JSON null reads as ().
    structure = _converter.get_structure_hook(tuple[item, ...])  # type: ignore[valid-type]

    def hook(value: Any, type_: Any) -> tuple[T, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return structure(value, type_)  # type: ignore[no-any-return]

    return hook


def _register(cls: type[T], *, null_is_default: bool = False, **overrides: Any) -> None:
    """Register the structure hook for ``cls``; ``null_is_default`` reads JSON null as ``cls()``."""
    structure = make_dict_structure_fn(cls, _converter, **overrides)
    if not null_is_default:
        _converter.register_structure_hook(cls, structure)
        return

    def hook(value: Any, _: Any) -> T:
        return cls() if value is None else structure(value, cls)

    _converter.register_structure_hook(cls, hook)


_converter.register_structure_hook(TaskStatus, lambda v, _: TaskStatus.parse(v))
_register(
    Video,
    id=override(struct_hook=_id),
    url=override(struct_hook=_text),
    duration=override(struct_hook=_seconds),
    watermark_url=override(struct_hook=_opt_text),
)
_register(
    ParentVideo,
    id=override(struct_hook=_id),
    url=override(struct_hook=_text),
    duration=override(struct_hook=_seconds),
)
_register(Image, url=override(struct_hook=_text), watermark_url=override(struct_hook=_opt_text))
_register(  # after Video and Image, whose hooks the tuple hooks capture
    TaskResult,
    null_is_default=True,
    videos=override(struct_hook=_tuple_of(Video)),
    images=override(struct_hook=_tuple_of(Image)),
)
_register(TaskInfo, null_is_default=True, external_task_id=override(struct_hook=_opt_text))
_register(
    Task,
    task_id=override(struct_hook=_id),
    raw_status=override(struct_hook=_text),
    task_status_msg=override(struct_hook=_text),
    final_unit_deduction=override(struct_hook=_units),
    created_at=override(struct_hook=_millis),
    updated_at=override(struct_hook=_millis),
)
_register(
    Face,
    face_id=override(struct_hook=_id),
    face_image=override(struct_hook=_text),
    start_time=override(struct_hook=_millis),
    end_time=override(struct_hook=_millis),
)
_register(
    FaceIdentification,
    session_id=override(struct_hook=_id),
    face_data=override(struct_hook=_tuple_of(Face)),
    final_unit_deduction=override(struct_hook=_units),
)
_register(
    ResourcePack,
    resource_pack_name=override(struct_hook=_text),
    resource_pack_id=override(struct_hook=_id),
    resource_pack_type=override(struct_hook=_text),
    total_quantity=override(struct_hook=_quantity),
    remaining_quantity=override(struct_hook=_quantity),
    purchase_time=override(struct_hook=_millis),
    effective_time=override(struct_hook=_millis),
    invalid_time=override(struct_hook=_millis),
    status=override(struct_hook=_text),
)
_PACKS = _tuple_of(ResourcePack)
_register(
    Envelope,
    message=override(struct_hook=_text),
    request_id=override(struct_hook=_opt_text),
)


# -- the fast path ---------------------------------------------------------------------------
#
# Every poll reads one envelope and one task, and cattrs' generated code (one try/except and
# error bookkeeping per field, a hook call per nested value) costs about three times json.loads
# for a full task. The functions below read the common, well-formed shapes directly, with the
# same per-field hooks as the converter; anything else they meet (a missing key, a value of an
# unexpected type, an odd watermark flag) raises, and the caller hands the payload to cattrs,
# which gives the same result or the ResponseFormatError naming the JSON path. So these can only
# make a read faster, never different.


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


def _fast_video(data: dict[str, Any]) -> Video:
    video_id = data["id"]
    url = data.get("url")
    marked = data.get("watermark_url")
    return Video(
        id=video_id if type(video_id) is str else _id(video_id, None),
        url=url if type(url) is str else _text(url, None),
        duration=_seconds(data.get("duration"), None),
        watermark_url=marked if type(marked) is str else _opt_text(marked, None),
    )


def _fast_image(data: dict[str, Any]) -> Image:
    index = data.get("index", 0)
    if type(index) is not int:
        raise TypeError("index")
    return Image(
        index=index,
        url=_text(data.get("url"), None),
        watermark_url=_opt_text(data.get("watermark_url"), None),
    )


# Frozen attrs objects cost several times a plain one to build, and every poll of a task reads
# the same task_info and, until it ends, an empty result: equal answers share one immutable
# object instead of building it again (the cache holds only all-string shapes, so a value of
# another type still takes the hooks below and meets the same checks as ever).
_NO_INFO = TaskInfo()
_NO_RESULT = TaskResult()
_WATERMARKS = {enabled: WatermarkInfo(enabled=enabled) for enabled in (False, True)}
_INFOS: dict[tuple[str, str, str, str | None], TaskInfo] = {}
_INFOS_KEPT = 4096


def _fast_info(data: Any) -> TaskInfo:
    if data is None:
        return _NO_INFO
    if type(data) is not dict:
        raise TypeError("task_info")
    parent = data.get("parent_video")
    external = data.get("external_task_id")
    if type(parent) is dict and (external is None or type(external) is str):
        parent_id, url, duration = parent.get("id"), parent.get("url"), parent.get("duration")
        if type(parent_id) is str and type(url) is str and type(duration) is str:
            key = (parent_id, url, duration, external)
            info = _INFOS.get(key)
            if info is None:
                if len(_INFOS) >= _INFOS_KEPT:
                    _INFOS.clear()
                info = _INFOS[key] = _build_info(parent, external)
            return info
    return _build_info(parent, external)


def _build_info(parent: Any, external: Any) -> TaskInfo:
    if parent is not None:
        if type(parent) is not dict:
            raise TypeError("parent_video")
        parent_id = parent["id"]
        url = parent.get("url")
        parent = ParentVideo(
            id=parent_id if type(parent_id) is str else _id(parent_id, None),
            url=url if type(url) is str else _text(url, None),
            duration=_seconds(parent.get("duration"), None),
        )
    elif external is None:
        return _NO_INFO
    return TaskInfo(
        parent_video=parent,
        external_task_id=external if type(external) is str else _opt_text(external, None),
    )


def _fast_result(data: Any) -> TaskResult:
    if data is None:
        return _NO_RESULT
    if type(data) is not dict:
        raise TypeError("task_result")
    videos = data.get("videos")
    images = data.get("images")
    if (videos is not None and type(videos) is not list) or (
        images is not None and type(images) is not list
    ):
        raise TypeError("task_result")
    if not videos and not images:
        return _NO_RESULT
    return TaskResult(
        videos=tuple([_fast_video(v) for v in videos]) if videos else (),
        images=tuple([_fast_image(i) for i in images]) if images else (),
    )


def _fast_watermark(data: Any) -> WatermarkInfo | None:
    if data is None:
        return None
    enabled = data.get("enabled", False) if type(data) is dict else None
    if type(enabled) is not bool:
        raise TypeError("watermark_info")
    return _WATERMARKS[enabled]


def _fast_task(data: dict[str, Any], kind: str) -> Task:
    if type(kind) is not str:
        raise TypeError("kind")
    status = data["task_status"]
    task_id = data["task_id"]
    message = data.get("task_status_msg")
    units = data.get("final_unit_deduction")
    created = data.get("created_at")
    updated = data.get("updated_at")
    # The exact-type tests take the shapes every poll meets without a hook call each.
    return Task(
        kind=kind,
        task_id=task_id if type(task_id) is str else _id(task_id, None),
        task_status=TaskStatus.parse(status),
        raw_status=status if type(status) is str else _text(status, None),
        task_status_msg=message if type(message) is str else _text(message, None),
        task_info=_fast_info(data.get("task_info")),
        task_result=_fast_result(data.get("task_result")),
        watermark_info=_fast_watermark(data.get("watermark_info")),
        final_unit_deduction=units if type(units) is str else _units(units, None),
        created_at=created if type(created) is int else _millis(created, None),
        updated_at=updated if type(updated) is int else _millis(updated, None),
    )


def _format_error(
    exc: Exception, *, root: str, request_id: str | None, http_status: int | None, body: Any
) -> ResponseFormatError:
    details = "; ".join(cattrs.transform_error(exc, path=root)) or str(exc)
    path = details.rsplit(" @ ", 1)[-1] if " @ " in details else root
    return ResponseFormatError(
        f"unexpected response shape: {details}",
        http_status=http_status,
        request_id=request_id,
        body_excerpt=excerpt(json_excerpt(body)),
        path=path,
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


def structure_task(
    data: Any, kind: str, *, request_id: str | None = None, root: str = "$.data"
) -> Task:
    """Read one task object (``data`` of a create/query answer, a list item, a callback body)."""
    if not isinstance(data, dict):
        raise ResponseFormatError(
            f"expected a task object at {root}, got {type(data).__name__}",
            request_id=request_id,
            body_excerpt=excerpt(json_excerpt(data)),
            path=root,
        )
    try:
        return _fast_task(data, kind)
    except Exception:
        pass  # not the common shape: cattrs reads it, or says exactly what is wrong
    try:
        return _converter.structure(
            {**data, "kind": kind, "raw_status": data.get("task_status")}, Task
        )
    except Exception as exc:
        raise _format_error(
            exc, root=root, request_id=request_id, http_status=None, body=data
        ) from exc


def structure_faces(data: Any, *, request_id: str | None = None) -> FaceIdentification:
    """Read the ``data`` of an ``identify-face`` answer."""
    try:
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, got {type(data).__name__}")
        return _converter.structure(data, FaceIdentification)
    except Exception as exc:
        raise _format_error(
            exc, root="$.data", request_id=request_id, http_status=None, body=data
        ) from exc


def structure_tasks(data: Any, kind: str, *, request_id: str | None = None) -> list[Task]:
    """Read the array of a list query."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ResponseFormatError(
            f"expected an array of tasks at $.data, got {type(data).__name__}",
            request_id=request_id,
            path="$.data",
        )
    return [
        structure_task(item, kind, request_id=request_id, root=f"$.data[{i}]")
        for i, item in enumerate(data)
    ]


def structure_resource_packs(data: Any, *, request_id: str | None = None) -> ResourcePacks:
    """Read ``GET /account/costs``'s ``data``: ``{code, msg, resource_pack_subscribe_infos}``,
    whose nested non-zero ``code`` is an error like the envelope's (kling-api-more-kinds.md 11)."""
    if not isinstance(data, dict):
        raise ResponseFormatError(
            f"expected an object at $.data, got {type(data).__name__}",
            request_id=request_id,
            body_excerpt=excerpt(json_excerpt(data)),
            path="$.data",
        )
    code = data.get("code", 0)
    if code not in (0, None):
        message = data.get("msg") if isinstance(data.get("msg"), str) else ""
        return_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        raise api_error(
            code=return_code,
            message=excerpt(message or "account costs refused"),
            request_id=request_id,
            http_status=200,
        )
    root = "$.data.resource_pack_subscribe_infos"
    try:
        packs = _PACKS(data.get("resource_pack_subscribe_infos"), tuple[ResourcePack, ...])
    except Exception as exc:
        raise _format_error(
            exc, root=root, request_id=request_id, http_status=None, body=data
        ) from exc
    return ResourcePacks(packs, request_id)


def task_to_json(task: Task) -> bytes:
    """A task as JSON bytes (wire field names plus ``kind``), readable by :func:`structure_task`."""
    return dumps(_converter.unstructure(task))


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
