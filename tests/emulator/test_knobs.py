"""The emulator's readings of what the docs leave open, each a knob; for each, the client is run
both ways and must not depend on the reading (DESIGN: "the emulator does not invent")."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from kling_async import FakeClock, TaskStatus
from kling_async.testing import Fault
from kling_async.testing._replies import encode
from kling_async.webhooks import CallbackReceiver, aiohttp_handler
from kling_async.webhooks.signing import SignatureError, verify
from tests.emulator.conftest import Api

OLD = "whsec_" + base64.b64encode(b"old-secret-of-the-emulator-32byte").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-of-the-emulator-32byte").decode()
OTHER = "whsec_" + base64.b64encode(b"some-other-secret-not-configured").decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)  # waits just return, deterministically


async def test_a_rotation_signs_with_every_secret_and_either_verifies(
    make_emulator: Any, make_client: Any, serve: Any
) -> None:
    emu = await make_emulator(webhook_secret=[OLD, NEW])
    kling = make_client(emu)
    receiver = CallbackReceiver(secret=OLD, client=kling)  # a receiver not yet rotated
    url = await serve(aiohttp_handler(receiver))
    task = await kling.extend_video(emu.add_video().video_id, callback_url=url)
    await kling.wait(task)
    await emu.flush_callbacks()
    assert emu.callbacks and receiver.accepted == len(emu.callbacks) and receiver.refused == 0
    for record in emu.callbacks:
        header = record.headers["webhook-signature"]
        assert len(header.split()) == 2 and all(s.startswith("v1,") for s in header.split())
        body = encode(record.payload)
        for secret in (OLD, NEW):
            verify(secret, msg_id=record.headers["webhook-id"], signature=header, body=body,
                   timestamp=record.headers["webhook-timestamp"], now=record.at)  # fmt: skip
        with pytest.raises(SignatureError):
            verify(OTHER, msg_id=record.headers["webhook-id"], signature=header, body=body,
                   timestamp=record.headers["webhook-timestamp"], now=record.at)  # fmt: skip


@pytest.mark.parametrize("signed", [True, False])
async def test_the_client_ends_its_wait_whether_legacy_callbacks_are_signed_or_not(
    make_emulator: Any, make_client: Any, serve: Any, signed: bool
) -> None:
    emu = await make_emulator(webhook_secret=OLD, sign_legacy_callbacks=signed)
    kling = make_client(emu)
    receiver = CallbackReceiver(secret=OLD, client=kling)
    url = await serve(aiohttp_handler(receiver))
    task = await kling.extend_video(emu.add_video().video_id, callback_url=url)
    done = await kling.wait(task)
    await emu.flush_callbacks()
    assert done.task_status is TaskStatus.SUCCEED
    assert all(("webhook-signature" in r.headers) is signed for r in emu.callbacks)
    # unsigned callbacks are refused by a receiver that wants signatures: polling carries on
    assert (receiver.accepted > 0, receiver.refused > 0) == (signed, not signed)


@pytest.mark.parametrize("submitted", [True, False])
async def test_the_client_ends_its_wait_with_or_without_a_submitted_callback(
    make_emulator: Any, make_client: Any, serve: Any, submitted: bool
) -> None:
    emu = await make_emulator(submitted_callback=submitted)
    kling = make_client(emu)
    url = await serve(aiohttp_handler(CallbackReceiver(client=kling)))
    task = await kling.extend_video(emu.add_video().video_id, callback_url=url)
    done = await kling.wait(task)
    await emu.flush_callbacks()
    assert done.task_status is TaskStatus.SUCCEED
    statuses = [r.status for r in emu.callbacks]
    assert statuses == (["submitted"] if submitted else []) + ["processing", "succeed"]


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("flavour", ["jwt", "relay"])
async def test_lists_and_lost_answers_do_not_depend_on_list_order(
    make_emulator: Any, make_client: Any, order: str, flavour: str
) -> None:
    emu = await make_emulator(list_order=order)
    kling = make_client(emu, flavour)
    seed = emu.add_video()
    made = [await kling.extend_video(seed.video_id, parent_task_id=seed.task_id) for _ in range(5)]
    listed = [t.task_id async for page in kling.list_tasks(page_size=2) for t in page]
    assert sorted(listed) == sorted(t.task_id for t in made)
    assert (listed[0] == made[-1].task_id) is (order == "newest")
    emu.fault(Fault.DROP_AFTER_CREATE)  # the answer is lost: found again, never sent twice
    found = await kling.extend_video(seed.video_id, parent_task_id=seed.task_id, prompt="lost")
    assert emu.tasks[found.task_id].body["prompt"] == "lost"
    assert emu.stats.created == 6


@pytest.mark.parametrize("duplicates", ["refuse", "accept"])
async def test_a_lost_answer_is_settled_once_whatever_duplicates_do(
    make_emulator: Any, make_client: Any, http: aiohttp.ClientSession, duplicates: str
) -> None:
    emu = await make_emulator(duplicate_external_id=duplicates)
    kling = make_client(emu)
    seed = emu.add_video()
    emu.fault(Fault.DROP_AFTER_CREATE)
    found = await kling.extend_video(seed.video_id, external_task_id="mine-1")
    assert emu.stats.created == 1 and found.external_task_id == "mine-1"
    # The same request again under its key (a retry): that task, under either reading.
    again = await kling.extend_video(seed.video_id, external_task_id="mine-1")
    assert again.task_id == found.task_id
    assert emu.stats.created == 1
    # Sent straight to the server, the duplicate is refused or makes a second task: the knob.
    status, answer = await Api(emu, http).create(
        {"video_id": seed.video_id, "external_task_id": "mine-1"}
    )
    if duplicates == "refuse":
        assert (status, answer["code"]) == (400, 1201)
        assert "already exists" in answer["message"]
    else:
        assert (status, answer["code"]) == (200, 0)
        assert (await kling.get_task("mine-1")).task_id != found.task_id  # the newest
    assert emu.stats.created == (1 if duplicates == "refuse" else 2)


@pytest.mark.parametrize("keeps_external", [True, False])
async def test_relay_lost_answers_do_not_depend_on_relay_external_ids(
    make_emulator: Any, make_client: Any, keeps_external: bool
) -> None:
    emu = await make_emulator(relay_external_task_id=keeps_external)
    kling = make_client(emu, "relay")
    seed = emu.add_video()
    emu.fault(Fault.DROP_AFTER_CREATE)
    # By its id where the relay kept it, else by a scan of the parent's tasks: found either way.
    found = await kling.extend_video(
        seed.video_id, parent_task_id=seed.task_id, external_task_id="relay-1"
    )
    record = emu.tasks[found.task_id]
    assert (record.external_task_id == "relay-1") is keeps_external
    assert emu.stats.created == 1  # never sent twice, either way


@pytest.mark.parametrize("order", ["newest", "oldest"])
async def test_a_relay_scan_past_the_first_page_does_not_depend_on_list_order(
    make_emulator: Any, make_client: Any, order: str
) -> None:
    emu = await make_emulator(list_order=order)
    kling = make_client(emu, "relay")
    others = emu.add_video()
    key = {"Authorization": f"Bearer {emu.credentials.relay_keys[0]}"}
    body = {"video_id": others.video_id, "task_id": others.task_id}
    async with aiohttp.ClientSession(headers=key) as http:
        for _ in range(100):  # a full first page of older extends (the scan reads 100 a page)
            async with http.post(emu.relay_url + "/v1/videos/video-extend", json=body) as r:
                assert r.status == 200
    await kling.clock.sleep(600)  # the lost create comes well after all of them
    seed = emu.add_video()
    emu.fault(Fault.DROP_AFTER_CREATE)
    found = await kling.extend_video(seed.video_id, parent_task_id=seed.task_id, prompt="lost")
    assert emu.tasks[found.task_id].body["prompt"] == "lost"
    assert emu.stats.created == 101


@pytest.mark.parametrize("keeps_external", [True, False])
async def test_a_resumed_relay_batch_never_resends_on_an_id_the_relay_may_not_know(
    make_emulator: Any, make_client: Any, keeps_external: bool, tmp_path: Any
) -> None:
    emu = await make_emulator(relay_external_task_id=keeps_external, relay_list_route=False)
    kling = make_client(emu, "relay")
    seed = emu.add_video()
    rows = [{"video_id": seed.video_id, "task_id": seed.task_id, "external_task_id": "r-1"}]
    journal = tmp_path / "relay.sqlite"
    emu.fault(Fault.DROP_AFTER_CREATE)
    first = [o.outcome async for o in kling.extend_many(rows, journal=journal)]
    again = [o.outcome async for o in kling.extend_many(rows, journal=journal)]
    assert emu.stats.created == 1  # the lost create is never paid twice
    if keeps_external:
        assert (first, again) == (["succeed"], ["succeed"])
    else:  # nothing can find it (no id, no list): ambiguous, as often as asked
        assert (first, again) == (["ambiguous"], ["ambiguous"])
