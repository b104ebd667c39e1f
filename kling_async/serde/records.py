"""Task records of the legacy shape (``task_id``, ``task_status``, ``task_result``), read fast.

What a query, a list page, a create answer or a legacy callback carries in ``data``, plus the
two other ``/v1`` answers with a record of their own (``identify-face``, ``/account/costs``).
The new standard's records (``id``, ``status``, ``outputs[]``) get a module beside this one,
sharing :mod:`.converter`'s hooks.

The fast path for well-formed answers mirrors the hooks registered here field by field, so the
two stay side by side: reading them together is how a change to one is made to the other.
"""

from __future__ import annotations

from typing import Any

from cattrs.gen import override

from ..account import ResourcePack, ResourcePacks
from ..errors import ResponseFormatError, api_error, excerpt
from ..models import (
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
from .converter import (
    _converter,
    _format_error,
    _id,
    _millis,
    _opt_text,
    _quantity,
    _register,
    _seconds,
    _text,
    _tuple_of,
    _units,
    dumps,
    json_excerpt,
)

__all__ = [
    "structure_faces",
    "structure_resource_packs",
    "structure_task",
    "structure_tasks",
    "task_to_json",
]

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


# -- the fast path ---------------------------------------------------------------------------
#
# Every poll reads one envelope and one task, and cattrs' generated code (one try/except and
# error bookkeeping per field, a hook call per nested value) costs about three times json.loads
# for a full task. The functions below read the common, well-formed shapes directly, with the
# same per-field hooks as the converter; anything else they meet (a missing key, a value of an
# unexpected type, an odd watermark flag) raises, and the caller hands the payload to cattrs,
# which gives the same result or the ResponseFormatError naming the JSON path. So these can only
# make a read faster, never different.


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
