"""Reading a callback body (kling-api.md 6.1, 6.2) into a :class:`CallbackEvent`.

Two shapes reach a ``callback_url``:

* **legacy** (the ``/v1/...`` task API): the bare task object, ``{task_id, task_status, ...}``,
  exactly what a query returns in ``data``. Read by :func:`kling_async.serde.structure_task`, so
  a callback and a poll of the same task give equal :class:`Task` objects.
* **standard** (model-in-path APIs): ``{id, status, message, create_time, update_time,
  external_id, outputs, billing}``. It is rewritten into the legacy shape and read the same way;
  ``status: "succeeded"`` reads as ``succeed`` and unknown statuses as ``UNKNOWN``.

Whatever the :class:`Task` model has no field for (audio outputs, cash billing...) stays in
:attr:`CallbackEvent.payload`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

from ..errors import ResponseFormatError, excerpt
from ..models import Task
from ..serde import json_excerpt, loads, structure_task

__all__ = ["CallbackEvent", "parse_callback"]

Shape = Literal["legacy", "standard"]


@attrs.frozen
class CallbackEvent:
    """One callback, read.

    ``task`` is the task as the callback describes it; ``shape`` which payload format it came
    in; ``webhook_id`` the ``webhook-id`` header (``None`` when the sender sent none);
    ``verified`` whether its Standard-Webhooks signature was checked and matched (only then is
    the content known to come from Kling). ``payload`` is the decoded JSON body, for fields the
    :class:`Task` model does not carry. ``query`` is the raw query string of the URL the
    callback was posted to, as the HTTP adapter saw it (not covered by the signature).
    """

    task: Task
    shape: Shape
    webhook_id: str | None = None
    verified: bool = False
    payload: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)
    query: str = attrs.field(default="", repr=False, eq=False)

    @property
    def task_id(self) -> str:
        return self.task.task_id


def _refuse(message: str, body: Any, path: str = "$") -> ResponseFormatError:
    shown = body[:400] if isinstance(body, (bytes, str)) else json_excerpt(body)
    return ResponseFormatError(message, body_excerpt=excerpt(shown), path=path)


def parse_callback(
    body: bytes | str,
    *,
    kind: str = "video-extend",
    webhook_id: str | None = None,
    verified: bool = False,
) -> CallbackEvent:
    """Read a callback body of either shape into a :class:`CallbackEvent`.

    ``kind`` is the task family to stamp on the :class:`Task` (the body does not say which
    endpoint created the task). ``webhook_id`` and ``verified`` are copied onto the event; this
    function checks no signature (:class:`~kling_async.webhooks.CallbackReceiver` does).
    A legacy body wrapped in the ``{code, message, request_id, data}`` envelope, as some relays
    forward it, is unwrapped. Anything else raises :class:`ResponseFormatError`.
    """
    try:
        payload = loads(body)
    except (ValueError, RecursionError):
        raise _refuse("callback body is not valid JSON", body) from None
    if not isinstance(payload, dict):
        raise _refuse(f"callback body is a JSON {type(payload).__name__}, not an object", body)
    data = payload.get("data")
    if "task_id" not in payload and "code" in payload and isinstance(data, dict):
        task = _legacy(data, kind, root="$.data")
        shape: Shape = "legacy"
    elif "task_id" in payload:
        task = _legacy(payload, kind, root="$")
        shape = "legacy"
    elif "id" in payload:
        task = _standard(payload, kind)
        shape = "standard"
    else:
        raise _refuse(
            "callback body is neither a legacy task object (no 'task_id') nor a new-standard "
            "one (no 'id')",
            body,
        )
    return CallbackEvent(task, shape, webhook_id, verified, payload)


def _legacy(data: dict[str, Any], kind: str, *, root: str) -> Task:
    task = structure_task(data, kind, root=root)
    if not task.task_id.strip():
        raise _refuse("callback has an empty task_id", data, f"{root}.task_id")
    return task


def _standard(payload: dict[str, Any], kind: str) -> Task:
    ident = payload.get("id")
    if isinstance(ident, bool) or not isinstance(ident, (str, int)) or not str(ident).strip():
        raise _refuse("new-standard callback has no usable 'id'", payload, "$.id")
    as_legacy = {
        "task_id": ident,
        "task_status": payload.get("status"),
        "task_status_msg": payload.get("message"),
        "created_at": payload.get("create_time"),
        "updated_at": payload.get("update_time"),
        "task_info": {"external_task_id": payload.get("external_id")},
        "task_result": _outputs(payload.get("outputs")),
        "final_unit_deduction": _units(payload.get("billing")),
    }
    try:
        return structure_task(as_legacy, kind, root="$")
    except ResponseFormatError as exc:
        # The path names the legacy field the value was moved to; say so rather than mislead.
        raise _refuse(
            f"new-standard callback has an unexpected value ({exc.message}, read as a legacy "
            "task object)",
            payload,
        ) from None


def _outputs(outputs: Any) -> dict[str, list[dict[str, Any]]]:
    """``outputs`` as a legacy ``task_result``: video and image items; other types are skipped.

    The docs list only ``type`` for an output item; ``id``, ``url``, ``duration`` and
    ``watermark_url`` are read when present, as the legacy result items name them.
    """
    if outputs is None:
        return {"videos": [], "images": []}
    if not isinstance(outputs, list):
        raise _refuse("new-standard callback: 'outputs' is not a list", outputs, "$.outputs")
    videos: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for i, item in enumerate(outputs):
        if not isinstance(item, dict):
            raise _refuse(
                f"new-standard callback: outputs[{i}] is not an object", item, f"$.outputs[{i}]"
            )
        output_type = str(item.get("type") or "").strip().lower()
        if output_type == "video":
            video = {k: item[k] for k in ("url", "duration", "watermark_url") if k in item}
            videos.append({"id": item.get("id") or "", **video})
        elif output_type == "image":
            image = {k: item[k] for k in ("url", "watermark_url") if k in item}
            images.append({"index": item.get("index", len(images)), **image})
    return {"videos": videos, "images": images}


def _units(billing: Any) -> str | None:
    """Resource-pack units charged (``charge_type: unit`` entries), like ``final_unit_deduction``.

    ``None`` when there are none or any amount is not a number: cash charges stay in the payload.
    """
    if not isinstance(billing, list):
        return None
    total, found = 0.0, False
    for entry in billing:
        if not isinstance(entry, dict) or entry.get("charge_type") != "unit":
            continue
        amount = entry.get("amount")
        if isinstance(amount, bool):
            return None
        try:
            total += float(amount)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        found = True
    if not math.isfinite(total):
        return None
    return format(total, "g") if found else None
