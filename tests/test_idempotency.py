"""A caller's own ``external_task_id`` is an idempotency key: the same request sent twice
(a web request retried by its client) makes one task and gets it back both times, under
either reading of duplicate ids; a different request under that key is a clear conflict."""

from __future__ import annotations

import asyncio

import pytest

from kling_async import ExternalIdConflictError, InvalidRequestError
from kling_async.testing import Durations, Fault

from .conftest import MakeClient, MakeEmulator, created, requests_to

READINGS = ["refuse", "accept"]


@pytest.mark.parametrize("reading", READINGS)
async def test_the_same_request_twice_gets_the_same_task_and_pays_once(
    make_emulator: MakeEmulator, make_client: MakeClient, reading: str
) -> None:
    emu = await make_emulator(duplicate_external_id=reading)
    seed = emu.add_video()
    kling = make_client(emu)
    first = await kling.extend_video(seed.video_id, external_task_id="order-42")
    again = await kling.extend_video(seed.video_id, external_task_id="order-42")
    assert again.task_id == first.task_id
    assert created(emu) == 1
    assert requests_to(emu, "create") == 1  # the second found it first: nothing sent
    assert kling.gate.in_use == 1  # one task, one slot


@pytest.mark.parametrize("reading", READINGS)
async def test_concurrent_tries_of_one_key_take_turns_and_share_one_task(
    make_emulator: MakeEmulator, make_client: MakeClient, reading: str
) -> None:
    emu = await make_emulator(duplicate_external_id=reading)
    seed = emu.add_video()
    kling = make_client(emu)
    tasks = await asyncio.gather(
        *(kling.extend_video(seed.video_id, external_task_id=f"k{i % 3}") for i in range(12))
    )
    assert created(emu) == 3
    by_key: dict[str, set[str]] = {}
    for task in tasks:
        assert task.external_task_id is not None
        by_key.setdefault(task.external_task_id, set()).add(task.task_id)
    assert {k: len(v) for k, v in by_key.items()} == {"k0": 1, "k1": 1, "k2": 1}


@pytest.mark.parametrize("reading", READINGS)
async def test_another_client_with_the_same_key_gets_the_task_and_counts_its_slot(
    make_emulator: MakeEmulator, make_client: MakeClient, reading: str
) -> None:
    """Another replica of the app (its own client) made it: found, and held in this client's
    gate as a running task of the account until it ends."""
    emu = await make_emulator(duplicate_external_id=reading, durations=Durations(running=20))
    seed = emu.add_video()
    replica, kling = make_client(emu), make_client(emu)
    made = await replica.extend_video(seed.video_id, external_task_id="order-7")
    found = await kling.extend_video(seed.video_id, external_task_id="order-7")
    assert found.task_id == made.task_id and created(emu) == 1
    assert kling.gate.in_use == 1


async def test_a_lost_answer_re_sent_under_a_refused_duplicate_finds_its_task(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    """Looked up first (absent), sent, the answer lost, looked up "not found" too early, sent
    again: the server refuses the duplicate and the client reads the task it made."""
    emu = await make_emulator(duplicate_external_id="refuse")
    seed = emu.add_video()
    kling = make_client(emu)
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    emu.refuse(1203, route="get", times=2)  # the look-up first, then the lost-answer look-up
    task = await kling.extend_video(seed.video_id, external_task_id="order-9")
    assert created(emu) == 1 and requests_to(emu, "create") == 2
    assert emu.tasks[task.task_id].external_task_id == "order-9"


@pytest.mark.parametrize("reading", READINGS)
async def test_a_different_request_under_a_used_key_is_a_conflict_naming_the_task(
    make_emulator: MakeEmulator, make_client: MakeClient, reading: str
) -> None:
    emu = await make_emulator(duplicate_external_id=reading)
    one, other = emu.add_video(), emu.add_video()
    kling = make_client(emu)
    first = await kling.extend_video(one.video_id, external_task_id="order-1")
    with pytest.raises(ExternalIdConflictError) as info:
        await kling.extend_video(other.video_id, external_task_id="order-1")
    err = info.value
    assert isinstance(err, InvalidRequestError) and err.code == 1201
    assert err.task is not None and err.task.task_id == first.task_id
    assert first.task_id in str(err) and "order-1" in str(err)
    assert created(emu) == 1
    assert kling.gate.in_use == 1  # the refused one gave its slot back


async def test_a_duplicate_refused_for_a_task_of_another_kind_is_a_conflict(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    """The key is taken by a task this create's route cannot show (another kind): the
    server's 1201 "already exists" is no task to return, and nothing was created."""
    emu = await make_emulator(duplicate_external_id="refuse")
    seed = emu.add_video()
    kling = make_client(emu)
    await kling.text_to_video("a cat", external_task_id="shared-key")
    with pytest.raises(ExternalIdConflictError) as info:
        await kling.extend_video(seed.video_id, external_task_id="shared-key")
    assert info.value.task is None
    assert created(emu) == 1
