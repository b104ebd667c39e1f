"""Reading batch input files (in process): CSV columns, aliases, types, bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from kling_async.cli.input import InputErrors, read_requests
from kling_async.requests import (
    CameraConfig,
    CameraControl,
    ImageGenerationRequest,
    LipSyncRequest,
    TextToVideoRequest,
    VideoExtendRequest,
    VirtualTryOnRequest,
)


def test_csv_columns_aliases_and_types(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(
        "video_id,task_id,prompt,cfg_scale,watermark,kind,external_task_id\n"
        'v1,t1,"a prompt, with a comma",0.5,yes,video-extend,x-1\n'
        "\n"
        'v2,,"two\nlines",,no,,\n'
        "v3,,,1,,,\n"
    )
    rows = read_requests(source)
    assert [r.line for r in rows] == [2, 4, 6]
    first, second, third = (r.request for r in rows)
    assert first.parent_task_id == "t1" and first.prompt == "a prompt, with a comma"
    assert first.cfg_scale == 0.5 and first.watermark_info is not None
    assert first.watermark_info.enabled and first.external_task_id == "x-1"
    assert second.prompt == "two\nlines" and second.watermark_info is not None
    assert not second.watermark_info.enabled
    assert third.cfg_scale == 1.0 and third.parent_task_id is None


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("a.csv", "video_id,promt\nv1,x\n", ":1: promt: unknown field"),
        ("b.csv", "video_id,cfg_scale\nv1,high\n", ":2: cfg_scale: must be a number"),
        ("c.csv", "video_id,watermark\nv1,maybe\n", ":2: watermark: must be true or false"),
        ("d.csv", "video_id,kind\nv1,lip-sync\n", ":2: video_id: unknown field; lip-sync takes"),
        ("d2.csv", "video_id,kind\nv1,text-to-video\n", ":2: kind: unknown kind 'text-to-video'"),
        ("k.csv", "kind,prompt,n\nimage-generation,x,many\n", ":2: n: must be an integer"),
        ("l.csv", "kind,prompt,n\nimage-generation,x,12\n", ":2: n: must be in [1, 9]"),
        ("m.csv", "kind,prompt,camera_control\ntext2video,x,{bad\n", ":2: camera_control: must be"),
        ("n.csv", "kind,prompt,video_id\ntext2video,x,v1\n", ":2: video_id: unknown field; text"),
        ("e.jsonl", '{"video_id": "v1", "task_id": "a", "parent_task_id": "b"}\n', ":1: "),
        ("f.jsonl", '["v1"]\n', ":1: expected a JSON object"),
        ("g.jsonl", '{"video_id": "v1", "task_id": " t"}\n', ":1: task_id: must not start"),
        ("h.jsonl", '{"video_id": 5}\n', ":1: video_id: must be a string"),
        (
            "i.jsonl",
            '{"video_id": "v1", "external_task_id": "x"}\n'
            '{"video_id": "v2", "external_task_id": "x"}\n',
            ":2: external_task_id: 'x' is already used on line 1",
        ),
        ("j.jsonl", "\n\n", ": has no requests"),
    ],
)
def test_bad_rows_name_the_line_and_field(tmp_path: Path, name: str, text: str, where: str) -> None:
    source = tmp_path / name
    source.write_text(text)
    with pytest.raises(InputErrors) as caught:
        read_requests(source)
    assert f"{source}{where}" in str(caught.value)


def test_csv_rows_of_every_kind_read_numbers_and_json_cells(tmp_path: Path) -> None:
    source = tmp_path / "kinds.csv"
    lip = '{""mode"": ""text2video"", ""video_id"": ""v7"", ""text"": ""hi"", ""voice_id"": ""a""}'
    source.write_text(
        "kind,video_id,prompt,cfg_scale,n,image_fidelity,camera_control,input,human_image\n"
        ",v1,keep going,0.5,,,,,\n"
        'text2video,,  a fox  ,0.75,,,"{""type"": ""simple"", ""config"": {""roll"": 2}}",,\n'
        "image-generation,,a map,,3,0.25,,,\n"
        f'lip-sync,,,,,,,"{lip}",\n'
        "virtual-try-on,,,,,,,, https://x.test/h.png \n"
    )
    extend, t2v, images, lip_sync, try_on = (r.request for r in read_requests(source))
    assert isinstance(extend, VideoExtendRequest) and extend.cfg_scale == 0.5
    assert isinstance(t2v, TextToVideoRequest)
    assert t2v.prompt == "  a fox  " and t2v.cfg_scale == 0.75  # prompts kept as written
    assert t2v.camera_control == CameraControl(type="simple", config=CameraConfig(roll=2))
    assert isinstance(images, ImageGenerationRequest)
    assert images.n == 3 and images.image_fidelity == 0.25
    assert isinstance(lip_sync, LipSyncRequest) and lip_sync.parent_video_id == "v7"
    assert isinstance(try_on, VirtualTryOnRequest)
    assert try_on.human_image == "https://x.test/h.png"
