"""Advanced lip-sync's two steps (kling-api-more-kinds.md §7): the synchronous identify-face
(no task; typed faces) and the session it opens, which advanced-lip-sync must name."""

from __future__ import annotations

from typing import Any

import pytest

from kling_async import APIError, FakeClock, InvalidRequestError, RequestValidationError
from kling_async.models import Face, FaceIdentification
from kling_async.testing import Fault

from ..conftest import MakeClient, MakeEmulator, requests_to
from .common import PNG, post_raw

FACE = {"sound_file": PNG, "sound_start_time": 0, "sound_end_time": 2500, "sound_insert_time": 0}


@pytest.mark.parametrize("flavour", ["jwt", "relay"])
async def test_identify_face_answers_typed_faces_and_makes_no_task(
    make_emulator: MakeEmulator, make_client: MakeClient, flavour: str
) -> None:
    emu = await make_emulator()
    kling = make_client(emu, flavour)
    seed = emu.add_video(duration=8.0)
    found = await kling.identify_face(seed.video_id)
    assert isinstance(found, FaceIdentification) and found.session_id
    assert found.faces == (
        Face(face_id="0", face_image=found.faces[0].face_image, start_time=0, end_time=8000),
    )
    assert found.faces[0].face_image.startswith("http")
    assert found.final_unit_deduction == "0"
    assert emu.stats.created == 0 and not emu.tasks.keys() - {seed.task_id}
    by_url = await kling.identify_face(video_url=seed.url)  # the emulator's own media URL
    assert by_url.session_id != found.session_id and by_url.faces[0].end_time == 8000


async def test_a_bad_identify_face_is_refused_before_any_io(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    for args, kwargs in [
        ((), {}),
        (("v1",), {"video_url": "https://v.example/a.mp4"}),
        (("",), {}),
        ((), {"video_url": "ftp://v.example/a.mp4"}),
    ]:
        with pytest.raises(RequestValidationError):
            await kling.identify_face(*args, **kwargs)
    assert sum(n for (_, route, _), n in emu.stats.requests.items() if route == "create") == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "exactly one of video_id, video_url"),
        ({"video_id": "v", "video_url": "https://v.example/a.mp4"}, "exactly one"),
        ({"video_id": "no-such-video"}, "video_id does not name an existing video"),
        ({"video_url": "file:///etc/passwd"}, "video_url must be an http(s) URL"),
    ],
)
async def test_the_emulator_refuses_a_bad_identify_face(
    make_emulator: MakeEmulator, body: dict[str, Any], says: str
) -> None:
    emu = await make_emulator()
    status, answer = await post_raw(emu, "/v1/videos/identify-face", body)
    assert (status, answer["code"]) == (400, 1201) and says in answer["message"], answer


async def test_identify_face_takes_videos_of_at_most_60_seconds(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    await kling.identify_face(emu.add_video(duration=60.0).video_id)
    with pytest.raises(InvalidRequestError) as caught:
        await kling.identify_face(emu.add_video(duration=61.0).video_id)
    assert caught.value.code == 1201 and "60" in str(caught.value)


async def test_identify_face_is_sent_once_never_retried(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    # Billed, and no id to look a lost answer up by: a 5000 is the caller's to judge.
    emu = await make_emulator()
    kling = make_client(emu)
    emu.fault(Fault.SERVER_5000, route="create")
    with pytest.raises(APIError) as caught:
        await kling.identify_face(emu.add_video().video_id)
    assert caught.value.code == 5000
    assert requests_to(emu, "create") == 1


async def test_advanced_lip_sync_needs_an_open_session_and_its_face(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    seed = emu.add_video(duration=5.0)
    found = await kling.identify_face(seed.video_id)
    face_id = found.faces[0].face_id

    async def refused(session: Any, **changes: Any) -> str:
        with pytest.raises(InvalidRequestError) as caught:
            await kling.advanced_lip_sync(session, [{**FACE, "face_id": face_id, **changes}])
        assert caught.value.code == 1201
        return str(caught.value)

    assert "face_id is not a face" in await refused(found, face_id="9")
    assert "sound_insert_time" in await refused(found, sound_insert_time=3500)  # < 2 s left
    assert "does not name" in await refused("not-a-session")
    task = await kling.advanced_lip_sync(found, [{**FACE, "face_id": face_id}])
    assert emu.tasks[task.task_id].parent is not None
    await clock.advance(24 * 3600 + 1)  # sessions last 24 h
    assert "expired" in await refused(found)


async def test_identify_face_takes_video_id_by_name(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    seed = emu.add_video()
    found = await kling.identify_face(video_id=seed.video_id)
    assert found.faces and found.session_id
    with pytest.raises(RequestValidationError):
        await kling.identify_face(seed.video_id, video_id=seed.video_id)
