"""Both callback payload shapes read into a ``CallbackEvent``, and bodies that are not callbacks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from kling_async import ResponseFormatError, TaskStatus
from kling_async.serde import structure_task
from kling_async.webhooks import parse_callback

from .common import FAIL, OK, P, legacy_body


def test_a_legacy_callback_reads_like_a_query() -> None:
    data: dict[str, Any] = {
        "task_id": "815336423632572487",
        "task_status": "succeed",
        "task_status_msg": "",
        "created_at": 1_700_000_000_000,
        "updated_at": 1_700_000_320_000,
        "final_unit_deduction": "1",
        "task_info": {
            "external_task_id": "ext-1",
            "parent_video": {"id": "pv", "url": "https://x/p.mp4", "duration": "5"},
        },
        "task_result": {"videos": [{"id": "v2", "url": "https://x/v2.mp4", "duration": "9.5"}]},
        "an_unknown_field": {"is": "ignored"},
    }
    event = parse_callback(json.dumps(data).encode(), kind="video-extend")
    assert event.shape == "legacy" and not event.verified and event.webhook_id is None
    assert event.task == structure_task(data, "video-extend")
    assert event.task.video is not None and event.task.video.duration == 9.5
    assert event.task.external_task_id == "ext-1"
    assert event.payload["an_unknown_field"] == {"is": "ignored"}
    assert parse_callback(json.dumps(data), kind="text2video").task.kind == "text2video"


def test_a_legacy_callback_in_an_envelope_is_unwrapped() -> None:
    body = json.dumps({"code": 0, "message": "SUCCEED", "data": json.loads(legacy_body())})
    event = parse_callback(body.encode())
    assert event.shape == "legacy" and event.task.task_status is P


def test_a_new_standard_callback_maps_onto_a_task() -> None:
    body = {
        "id": 815336423632572487,  # a number on the wire still becomes an exact string
        "status": "succeeded",
        "message": "",
        "create_time": 1781080778802,
        "update_time": 1781080794151,
        "external_id": "order-7",
        "outputs": [
            {"type": "video", "id": "v9", "url": "https://x/v9.mp4", "duration": "10.1"},
            {"type": "image", "url": "https://x/i.png"},
            {"type": "audio", "url": "https://x/a.mp3"},
        ],
        "billing": [
            {"charge_type": "unit", "amount": 2.5, "package_type": "video"},
            {"charge_type": "cash", "amount": "0.3", "currency": "USD"},
        ],
    }
    event = parse_callback(json.dumps(body).encode(), kind="video-extend", webhook_id="m1")
    task = event.task
    assert event.shape == "standard" and event.webhook_id == "m1"
    assert task.task_id == "815336423632572487" and task.kind == "video-extend"
    assert task.task_status is OK and task.raw_status == "succeeded"
    assert (task.created_at, task.updated_at) == (1781080778802, 1781080794151)
    assert task.external_task_id == "order-7"
    assert task.video is not None
    assert (task.video.id, task.video.url, task.video.duration) == ("v9", "https://x/v9.mp4", 10.1)
    assert [i.url for i in task.task_result.images] == ["https://x/i.png"]
    assert task.final_unit_deduction == "2.5" and task.units_deducted == 2.5
    assert event.payload["outputs"][2]["type"] == "audio"  # kept, though Task has no place for it


def test_a_failed_new_standard_callback_keeps_its_reason() -> None:
    body = b'{"id":"1","status":"failed","message":"Image pixel is invalid","outputs":null}'
    task = parse_callback(body).task
    assert task.task_status is FAIL and task.task_status_msg == "Image pixel is invalid"
    assert task.videos == () and task.final_unit_deduction is None


@pytest.mark.parametrize(
    ("body", "status", "raw"),
    [
        (b'{"id":"1","status":"succeeded"}', OK, "succeeded"),
        (b'{"id":"1","status":"SUCCEEDED"}', OK, "SUCCEEDED"),
        (b'{"id":"1","status":"queued"}', TaskStatus.UNKNOWN, "queued"),
        (b'{"id":"1"}', TaskStatus.UNKNOWN, ""),
        (b'{"task_id":"1","task_status":"succeed"}', OK, "succeed"),
        (b'{"task_id":"1","task_status":"paused"}', TaskStatus.UNKNOWN, "paused"),
    ],
)
def test_statuses(body: bytes, status: TaskStatus, raw: str) -> None:
    task = parse_callback(body).task
    assert task.task_status is status and task.raw_status == raw


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "not valid JSON"),
        (b"not json", "not valid JSON"),
        (b'{"task_id": "1", "task_status": "succ', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b"null", "not an object"),
        (b"{}", "neither a legacy task object"),
        (b'{"status": "succeeded"}', "neither a legacy task object"),
        (b'{"task_id": "1"}', "task_status"),
        (b'{"task_id": "", "task_status": "succeed"}', "empty task_id"),
        (b'{"task_id": 1.5, "task_status": "succeed"}', "task_id"),
        (b'{"id": ""}', "no usable 'id'"),
        (b'{"id": true}', "no usable 'id'"),
        (b'{"id": "1", "outputs": {"type": "video"}}', "'outputs' is not a list"),
        (b'{"id": "1", "outputs": ["video"]}', "outputs[0] is not an object"),
        (b'{"id": "1", "outputs": [{"type": "video", "url": 5}]}', "new-standard callback"),
        (b'{"id": "1", "create_time": "noon"}', "new-standard callback"),
    ],
)
def test_garbage_is_a_response_format_error(body: bytes, says: str) -> None:
    with pytest.raises(ResponseFormatError, match=re.escape(says)):
        parse_callback(body)
