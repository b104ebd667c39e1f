"""The converter and the error table: tolerant reading, strict writing, codes to classes."""

from __future__ import annotations

import pytest

from kling_async import (
    AccountError,
    APIError,
    AuthenticationError,
    ConcurrencyLimitError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PolicyError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    TaskStatus,
    VideoExtendRequest,
)
from kling_async.errors import api_error
from kling_async.serde import (
    structure_envelope,
    structure_task,
    structure_tasks,
    unstructure_request,
)

QUERY = {
    "task_id": 815336423632572487,  # a relay that sends the id as a number
    "task_status": "succeed",
    "task_status_msg": "",
    "task_info": {
        "parent_video": {"id": "v-parent", "url": "https://x/p.mp4", "duration": "5"},
        "external_task_id": "job-1",
    },
    "task_result": {
        "videos": [{"id": "v-child", "url": "https://x/c.mp4", "duration": "9.6", "seed": "1"}],
        "images": None,
    },
    "watermark_info": {"enabled": False},
    "final_unit_deduction": "1",
    "final_balance_deduction": {"quota": 1, "list_price": 2},
    "created_at": 1722769557708,
    "updated_at": 1722769844426,
    "something_new": {"the": "server added it"},
}


def test_a_full_query_answer_reads_into_a_task() -> None:
    task = structure_task(QUERY, "video-extend")
    assert task.task_id == "815336423632572487"
    assert task.task_status is TaskStatus.SUCCEED and task.is_terminal
    assert task.video is not None and task.video.duration == 9.6
    assert task.task_info.parent_video is not None
    assert task.task_info.parent_video.duration == 5.0
    assert task.external_task_id == "job-1"
    assert task.task_result.images == ()
    assert task.units_deducted == 1.0
    assert (task.created_at, task.updated_at) == (1722769557708, 1722769844426)


def test_a_create_answer_with_nulls_reads() -> None:
    task = structure_task(
        {
            "task_id": "1",
            "task_status": "submitted",
            "task_result": {"images": [], "videos": None},
            "task_info": None,
            "created_at": 1,
            "updated_at": 1,
        },
        "video-extend",
    )
    assert task.video is None and task.task_info.parent_video is None


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("submitted", TaskStatus.SUBMITTED),
        ("processing", TaskStatus.PROCESSING),
        ("succeed", TaskStatus.SUCCEED),
        ("succeeded", TaskStatus.SUCCEED),
        ("failed", TaskStatus.FAILED),
        ("queued", TaskStatus.UNKNOWN),
        ("", TaskStatus.UNKNOWN),
    ],
)
def test_statuses(wire: str, status: TaskStatus) -> None:
    task = structure_task({"task_id": "1", "task_status": wire}, "video-extend")
    assert task.task_status is status
    assert task.raw_status == wire
    assert task.is_terminal == (status in (TaskStatus.SUCCEED, TaskStatus.FAILED))


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"task_id": 1.5, "task_status": "x"}, "$.data.task_id"),
        ({"task_status": "x"}, "$.data.task_id"),
        (
            {
                "task_id": "1",
                "task_status": "x",
                "task_result": {"videos": [{"id": "a"}, {"id": "b", "duration": "long"}]},
            },
            "$.data.task_result.videos[1].duration",
        ),
        (
            {"task_id": "1", "task_status": "x", "task_result": {"videos": "none"}},
            "$.data.task_result.videos",
        ),
        ({"task_id": "1", "task_status": "x", "created_at": True}, "$.data.created_at"),
    ],
)
def test_wrong_shapes_name_the_path_and_keep_the_request_id(
    data: dict[str, object], path: str
) -> None:
    with pytest.raises(ResponseFormatError) as info:
        structure_task(data, "video-extend", request_id="req-9")
    assert info.value.path == path
    assert info.value.request_id == "req-9"
    assert path in str(info.value)


def test_lists_and_envelopes() -> None:
    tasks = structure_tasks([QUERY, {**QUERY, "task_id": "2"}], "video-extend", request_id="r")
    assert [t.task_id for t in tasks] == ["815336423632572487", "2"]
    with pytest.raises(ResponseFormatError, match=r"\$\.data\[1\]"):
        structure_tasks([QUERY, "nope"], "video-extend")
    with pytest.raises(ResponseFormatError, match="array"):
        structure_tasks({"not": "a list"}, "video-extend")
    envelope = structure_envelope(
        {"code": 0, "message": "SUCCEED", "request_id": "r", "data": [], "x": 1}
    )
    assert (envelope.code, envelope.request_id, envelope.data) == (0, "r", [])
    with pytest.raises(ResponseFormatError, match="no 'code'"):
        structure_envelope({"message": "hi"}, http_status=200)


def test_requests_leave_out_what_was_not_given() -> None:
    body = unstructure_request(VideoExtendRequest(video_id="v", prompt="p"))
    assert body == {"video_id": "v", "prompt": "p"}
    full = unstructure_request(
        VideoExtendRequest(
            video_id="v",
            parent_task_id="t",
            negative_prompt="n",
            cfg_scale=0,
            callback_url="https://cb.example/x",
            external_task_id="e",
            watermark_info=True,
        )
    )
    assert full == {
        "video_id": "v",
        "task_id": "t",
        "negative_prompt": "n",
        "cfg_scale": 0.0,
        "callback_url": "https://cb.example/x",
        "external_task_id": "e",
        "watermark_info": {"enabled": True},
    }


CODES: list[tuple[int, int, type[APIError], bool]] = [
    (1000, 401, AuthenticationError, False),
    (1001, 401, AuthenticationError, False),
    (1002, 401, AuthenticationError, False),
    (1003, 401, AuthenticationError, True),
    (1004, 401, AuthenticationError, True),
    (1100, 429, AccountError, False),
    (1101, 429, AccountError, False),
    (1102, 429, InsufficientBalanceError, False),
    (1103, 403, PermissionDeniedError, False),
    (1200, 400, InvalidRequestError, False),
    (1201, 400, InvalidRequestError, False),
    (1202, 404, InvalidRequestError, False),
    (1203, 404, NotFoundError, False),
    (1300, 400, PolicyError, False),
    (1301, 400, PolicyError, False),
    (1302, 429, RateLimitError, True),
    (1303, 429, ConcurrencyLimitError, True),
    (1304, 429, PolicyError, False),
    (5000, 500, ServerError, True),
    (5001, 503, ServerError, True),
    (5002, 504, ServerError, True),
]


@pytest.mark.parametrize(("code", "status", "cls", "retryable"), CODES)
def test_every_code_maps_to_its_class(
    code: int, status: int, cls: type[APIError], retryable: bool
) -> None:
    error = api_error(code=code, message="m", request_id="r", http_status=status)
    assert type(error) is cls
    assert error.retryable is retryable
    # the business code wins over a relay that rewrote the HTTP status
    assert type(api_error(code=code, message="m", request_id="r", http_status=400)) is cls


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (502, ServerError, True),
        (401, AuthenticationError, False),
        (404, NotFoundError, False),
        (429, RateLimitError, True),
        (418, APIError, False),
    ],
)
def test_without_a_code_the_http_status_decides(
    status: int, cls: type[APIError], retryable: bool
) -> None:
    error = api_error(
        code=None, message="m", request_id=None, http_status=status, body_excerpt="<html>"
    )
    assert type(error) is cls and error.retryable is retryable and error.code is None
    assert "<html>" in str(error)
