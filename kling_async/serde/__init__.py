"""The one converter between JSON and kling_async's attrs classes (see :mod:`.records`)."""

from __future__ import annotations

from .records import (
    dumps,
    loads,
    request_from_wire,
    structure_envelope,
    structure_faces,
    structure_resource_packs,
    structure_task,
    structure_tasks,
    task_to_json,
    unstructure_request,
)

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
