"""The one converter between JSON and kling_async's attrs classes, split by what it reads.

:mod:`.converter` holds the cattrs converter, its per-field hooks and the JSON codec;
:mod:`.envelope` reads the ``{code, message, request_id, data}`` envelope of every answer;
:mod:`.records` the task records of the legacy shape (and the faces and account answers);
:mod:`.requests` writes request bodies and reads them back from a journal. Reading is tolerant
(unknown keys ignored), writing strict (``None`` fields left out); a wrong shape is a
:class:`~kling_async.errors.ResponseFormatError` naming the JSON path.
"""

from __future__ import annotations

from .converter import dumps, json_excerpt, loads
from .envelope import structure_envelope
from .records import (
    structure_faces,
    structure_resource_packs,
    structure_task,
    structure_tasks,
    task_to_json,
)
from .requests import request_from_wire, unstructure_request

__all__ = [
    "dumps",
    "json_excerpt",
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
