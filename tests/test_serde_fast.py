"""serde's fast path must read exactly what the cattrs converter reads, and fail where it fails.

``structure_task``/``structure_envelope`` try hand-written readers for the common shapes and fall
back to the converter on anything else. These tests mutate real payloads at random (seeded) and
compare every answer with the converter's own, so a fast reader that accepts something the
converter refuses, or reads a value differently, fails here.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from kling_async import ResponseFormatError
from kling_async.models import Envelope, Task
from kling_async.serde import structure_envelope, structure_task
from kling_async.serde.converter import _converter

TASK: dict[str, Any] = {
    "task_id": "815336423632572487",
    "task_status": "succeed",
    "task_status_msg": "",
    "task_info": {
        "parent_video": {"id": "v-parent", "url": "https://x/p.mp4", "duration": "5"},
        "external_task_id": "job-1",
    },
    "task_result": {
        "videos": [
            {"id": "v-child", "url": "https://x/c.mp4", "duration": "9.6", "watermark_url": "w"}
        ],
        "images": [{"index": 0, "url": "https://x/i.png"}],
    },
    "watermark_info": {"enabled": True},
    "final_unit_deduction": "1",
    "created_at": 1722769557708,
    "updated_at": 1722769844426,
}
ENVELOPE: dict[str, Any] = {"code": 0, "message": "SUCCEED", "request_id": "r-1", "data": TASK}
# What every poll before the end reads: a parent video, an empty result.
POLL: dict[str, Any] = {
    "task_id": "815336423632572488",
    "task_status": "processing",
    "task_status_msg": "",
    "task_info": {
        "parent_video": {"id": "v-parent", "url": "https://x/p.mp4", "duration": "5"},
    },
    "task_result": {"videos": []},
    "watermark_info": {"enabled": False},
    "final_unit_deduction": "1",
    "created_at": 1722769557708,
    "updated_at": 1722769557708,
}
ODD_VALUES: list[Any] = [None, "", "5", "x", 5, 5.5, -1, True, False, [], {}, [{}], {"id": 1}]


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys and list indices)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _places(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _places(inner, (*path, index))
    return found


def _mutate(payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    mutated = copy.deepcopy(payload)
    for _ in range(rng.randint(1, 3)):
        places = _places(mutated)
        if not places:
            break
        *parent_path, last = rng.choice(places)
        parent: Any = mutated
        for step in parent_path:
            parent = parent[step]
        action = rng.random()
        if action < 0.2 and isinstance(parent, dict):
            del parent[last]
        elif action < 0.3 and isinstance(parent, dict):
            parent["unexpected_field"] = rng.choice(ODD_VALUES)
        else:
            parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
    return mutated


def _converter_task(data: dict[str, Any]) -> Task | type[Exception]:
    try:
        result: Task = _converter.structure(
            {**data, "kind": "video-extend", "raw_status": data.get("task_status")}, Task
        )
    except Exception:
        return ResponseFormatError
    return result


def _converter_envelope(payload: dict[str, Any]) -> Envelope | type[Exception]:
    try:
        result: Envelope = _converter.structure(payload, Envelope)
    except Exception:
        return ResponseFormatError
    return result


def _read(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ResponseFormatError:
        return ResponseFormatError


def test_the_payloads_themselves_take_the_fast_path_and_read_fully() -> None:
    task = structure_task(TASK, "video-extend")
    assert task == _converter_task(TASK)
    assert task.video is not None and task.video.duration == 9.6
    assert task.task_result.images[0].url == "https://x/i.png"
    assert task.watermark_info is not None and task.watermark_info.enabled is True
    assert structure_envelope(ENVELOPE) == _converter_envelope(ENVELOPE)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("payload", [TASK, POLL], ids=["ended", "poll"])
def test_mutated_tasks_read_as_the_converter_reads_them(seed: int, payload: Any) -> None:
    rng = random.Random(seed)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(500):
        data = _mutate(payload, rng)
        expected = _converter_task(data)
        got = _read(structure_task, data, "video-extend")
        assert got == expected, data
        outcomes["read" if isinstance(expected, Task) else "refused"] += 1
    # The mutations must exercise both sides, or the comparison proves little.
    assert outcomes["read"] > 50 and outcomes["refused"] > 50, outcomes


@pytest.mark.parametrize("seed", range(2))
def test_mutated_envelopes_read_as_the_converter_reads_them(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(500):
        payload = _mutate(ENVELOPE, rng)
        if "code" not in payload:
            continue  # refused before either reader runs
        assert _read(structure_envelope, payload) == _converter_envelope(payload), payload


def test_equal_polls_share_their_immutable_parts_and_different_ones_do_not() -> None:
    first = structure_task(POLL, "video-extend")
    again = structure_task(copy.deepcopy(POLL), "video-extend")
    assert first == _converter_task(POLL)
    assert again.task_info is first.task_info  # read once, shared: frozen objects
    assert again.task_result is first.task_result and again.task_result.videos == ()
    assert again.watermark_info is first.watermark_info
    other = copy.deepcopy(POLL)
    other["task_info"]["parent_video"]["duration"] = "5.5"
    moved = structure_task(other, "video-extend")
    assert moved.task_info is not first.task_info
    assert moved.task_info.parent_video is not None
    assert moved.task_info.parent_video.duration == 5.5


def test_the_shared_task_infos_are_bounded() -> None:
    from kling_async.serde import records as serde

    for n in range(serde._INFOS_KEPT + 100):
        data = copy.deepcopy(POLL)
        data["task_info"]["external_task_id"] = f"job-{n}"
        assert structure_task(data, "video-extend").task_info.external_task_id == f"job-{n}"
        assert len(serde._INFOS) <= serde._INFOS_KEPT
