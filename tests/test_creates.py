"""Creates never pay twice and never lose a task: faults, lost answers, limits, retries."""

from __future__ import annotations

import socket

import pytest

from kling_async import (
    AmbiguousSubmitError,
    InsufficientBalanceError,
    KlingClient,
    RateLimitError,
    RequestTimeoutError,
    RetryEvent,
    RetryPolicy,
    ServerError,
    Timeouts,
    TransportError,
)
from kling_async.testing import Fault, KlingEmulator

from .conftest import MakeClient, MakeEmulator, created, requests_to


@pytest.mark.parametrize("flavour", ["jwt", "relay"])
@pytest.mark.parametrize(
    "fault", [Fault.DROP_AFTER_CREATE, Fault.TRUNCATED_JSON, Fault.MALFORMED_JSON]
)
async def test_lost_answer_finds_the_one_task_created(
    emu: KlingEmulator, make_client: MakeClient, flavour: str, fault: Fault
) -> None:
    """Official: looked up by the external_task_id sent; relay: found by scanning the list."""
    seed = emu.add_video()
    kling = make_client(emu, flavour)
    # Another task of the same video made earlier by this client must not be mistaken for it.
    earlier = await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    emu.fault(fault, route="create")
    task = await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    assert created(emu) == 2
    assert requests_to(emu, "create") == 2  # the lost create was not sent again
    assert task.task_id in emu.tasks
    assert task.task_id != earlier.task_id
    if flavour == "jwt":
        assert requests_to(emu, "list") == 0
    else:
        assert requests_to(emu, "list") >= 1


_NOTHING_CREATED = [Fault.SERVER_5000, Fault.SERVER_5002, Fault.NONZERO_CODE_200, Fault.DROP_BEFORE]


@pytest.mark.parametrize("fault", _NOTHING_CREATED)
async def test_relay_unanswered_create_is_not_resent_blindly(
    emu: KlingEmulator, make_client: MakeClient, fault: Fault
) -> None:
    seed = emu.add_video()
    kling = make_client(emu, "relay")
    emu.fault(fault, route="create")
    with pytest.raises(AmbiguousSubmitError) as info:
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    err = info.value
    assert requests_to(emu, "create") == 1  # a relay scan proves nothing: not sent again
    assert created(emu) == 0
    assert err.video_id == seed.video_id
    assert err.cause is not None
    assert await kling.find_submitted(err) is None  # looking again finds nothing either


@pytest.mark.parametrize("reading", ["refuse", "accept"])
@pytest.mark.parametrize("fault", _NOTHING_CREATED)
async def test_official_create_proven_absent_is_sent_again_under_its_id(
    make_emulator: MakeEmulator, make_client: MakeClient, fault: Fault, reading: str
) -> None:
    emu = await make_emulator(duplicate_external_id=reading)
    seed = emu.add_video()
    kling = make_client(emu)
    emu.fault(fault, route="create")
    task = await kling.extend_video(seed.video_id)
    assert requests_to(emu, "create") == 2  # looked up, "not found", then sent once more
    assert created(emu) == 1
    assert task.task_id in emu.tasks
    assert task.external_task_id is not None and task.external_task_id.startswith("ka-")
    assert emu.tasks[task.task_id].external_task_id == task.external_task_id


async def test_official_create_absent_every_time_gives_up_within_the_budget(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    seed = emu.add_video()
    kling = make_client(emu, retry=RetryPolicy.no_wait(max_attempts=3))
    emu.fault(Fault.SERVER_5001, route="create", times=None)
    with pytest.raises(ServerError):  # not ambiguous: nothing was created, the slot is free
        await kling.extend_video(seed.video_id)
    assert requests_to(emu, "create") == 3
    assert created(emu) == 0
    assert kling.gate.in_use == 0


async def test_a_send_that_did_happen_after_a_too_early_look_up_is_not_paid_twice(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    """The look-up raced the create (said "not found", the task appeared just after): the
    re-send under the same id is refused as a duplicate, and the task is the one created."""
    seed = emu.add_video()
    kling = make_client(emu)
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")  # created, the answer lost
    emu.refuse(1203, route="get", times=1)  # the look-up: "not found" (too early)
    task = await kling.extend_video(seed.video_id)
    assert created(emu) == 1
    assert requests_to(emu, "create") == 2  # the re-send was refused as a duplicate id
    assert requests_to(emu, "get") == 2  # then the task was read by that id
    assert task.task_id in emu.tasks
    assert kling.gate.in_use == 1  # held by that task, once


async def test_find_submitted_recovers_a_task_that_appears_later(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    seed = emu.add_video()
    kling = make_client(emu, "relay")
    emu.fault(Fault.SERVER_5001, route="create")
    with pytest.raises(AmbiguousSubmitError) as info:
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    # Say the server did create it after all (here: another process sent the same intent).
    other = make_client(emu, "relay")
    real = await other.extend_video(seed.video_id, parent_task_id=seed.task_id)
    found = await kling.find_submitted(info.value)
    assert found is not None and found.task_id == real.task_id


async def test_two_unknown_candidates_are_not_guessed(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    seed = emu.add_video()
    relay = make_client(emu, "relay")
    stranger = make_client(emu, "relay")
    await stranger.extend_video(seed.video_id, parent_task_id=seed.task_id)
    emu.fault(Fault.DROP_AFTER_CREATE, route="create")
    with pytest.raises(AmbiguousSubmitError):
        await relay.extend_video(seed.video_id, parent_task_id=seed.task_id)
    assert created(emu) == 2


async def test_read_timeout_on_create_finds_the_task(
    emu: KlingEmulator, make_client: MakeClient
) -> None:
    seed = emu.add_video()
    kling = make_client(emu, create_timeouts=Timeouts(connect=5, read=0.05, total=5))
    emu.fault(Fault.SLOW, route="create", delay=0.5)
    task = await kling.extend_video(seed.video_id)
    assert task.task_id in emu.tasks
    assert created(emu) == 1  # a second send would have made a second task


async def test_connect_failure_is_retried_then_raised_as_unsent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        events: list[RetryEvent] = []
        async with KlingClient(
            api_key="emu-static-key",
            base_url=f"http://127.0.0.1:{port}",
            retry=RetryPolicy.no_wait(max_attempts=3, on_retry=events.append),
        ) as kling:
            with pytest.raises(TransportError) as info:
                await kling.extend_video("v1")
    assert info.value.request_sent is False
    assert not isinstance(info.value, AmbiguousSubmitError)
    assert len(events) == 2


async def test_balance_exhausted_is_never_retried(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(balance_units=1.0)
    seed = emu.add_video()
    kling = make_client(emu)
    await kling.extend_video(seed.video_id)
    with pytest.raises(InsufficientBalanceError) as info:
        await kling.extend_video(seed.video_id)
    err = info.value
    assert (err.code, err.http_status, err.retryable) == (1102, 429, False)
    assert err.request_id
    assert requests_to(emu, "create") == 2
    assert created(emu) == 1


async def test_slot_frees_and_retry_succeeds(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: object
) -> None:
    """With real waits on the fake clock, the retry lands once the first task has ended."""
    emu = await make_emulator(slot_limit=1)
    seed = emu.add_video()
    kling = make_client(emu, retry=RetryPolicy(max_attempts=None, max_time=None, base=100, cap=100))
    import asyncio

    await kling.extend_video(seed.video_id)
    second = asyncio.ensure_future(kling.extend_video(seed.video_id))
    for _ in range(20):
        if second.done():
            break
        await clock.advance(60)  # type: ignore[attr-defined]
    task = await second
    assert task.task_id in emu.tasks
    assert created(emu) == 2
    assert emu.stats.max_slots_in_use == 1


async def test_retry_after_is_honoured_exactly_up_to_the_cap(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(rate_limit=1, retry_after=7)  # one create a second
    seed = emu.add_video()
    events: list[RetryEvent] = []
    kling = make_client(emu, retry=RetryPolicy.no_wait(max_attempts=3, on_retry=events.append))
    await kling.extend_video(seed.video_id)
    with pytest.raises(RateLimitError) as info:
        await kling.extend_video(seed.video_id)
    assert info.value.code == 1302 and info.value.retry_after == 7
    assert [e.wait for e in events] == [7.0, 7.0]
    capped = make_client(
        emu, retry=RetryPolicy.no_wait(max_attempts=2, retry_after_cap=3, on_retry=events.append)
    )
    with pytest.raises(RateLimitError):
        await capped.extend_video(seed.video_id)
    assert events[-1].wait == 3.0
    assert created(emu) == 1


async def test_html_502_is_a_typed_error(emu: KlingEmulator, make_client: MakeClient) -> None:
    kling = make_client(emu, retry=RetryPolicy.no_wait(max_attempts=2))
    emu.fault(Fault.GATEWAY_HTML_502, route="get", times=None)
    with pytest.raises(ServerError) as info:
        await kling.get_task("1")
    err = info.value
    assert err.http_status == 502 and err.code is None and err.retryable
    assert "html" in err.body_excerpt.lower()
    assert "502" in str(err)
    assert requests_to(emu, "get") == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault.GATEWAY_HTML_502,
        Fault.SERVER_5000,
        Fault.SERVER_5001,
        Fault.NONZERO_CODE_200,
        Fault.TRUNCATED_JSON,
        Fault.MALFORMED_JSON,
        Fault.DROP_BEFORE,
        Fault.EXTRA_FIELDS,
    ],
)
async def test_reads_ride_out_one_transient_fault(
    emu: KlingEmulator, make_client: MakeClient, fault: Fault
) -> None:
    seed = emu.add_video()
    kling = make_client(emu)
    task = await kling.extend_video(seed.video_id)
    emu.fault(fault, route="get")
    again = await kling.get_task(task)
    assert again.task_id == task.task_id


async def test_read_timeout_on_get_is_retried(emu: KlingEmulator, make_client: MakeClient) -> None:
    seed = emu.add_video()
    events: list[RetryEvent] = []
    kling = make_client(
        emu,
        timeouts=Timeouts(connect=5, read=0.05, total=5),
        retry=RetryPolicy.no_wait(max_attempts=3, on_retry=events.append),
    )
    task = await kling.extend_video(seed.video_id)
    emu.fault(Fault.SLOW, route="get", delay=0.5, times=2)
    assert (await kling.get_task(task)).task_id == task.task_id  # third time lucky
    assert [type(e.error) for e in events] == [RequestTimeoutError, RequestTimeoutError]
    emu.fault(Fault.SLOW, route="get", delay=0.5, times=None)
    with pytest.raises(RequestTimeoutError) as info:
        await kling.get_task(task)
    assert info.value.request_sent is True
    assert len(events) == 4


@pytest.mark.parametrize(
    ("fault", "lookups"),
    [
        (Fault.SERVER_5001, 1),  # Kling's own finished answer: its first "not found" is proof
        (Fault.SERVER_5000, 1),
        (Fault.SERVER_5002, 3),  # its own time-out: it may still be making it
        (Fault.DROP_BEFORE, 3),  # a connection lost: the server may still be at work
        (Fault.GATEWAY_HTML_502, 3),
    ],
)
async def test_a_finished_server_answer_is_settled_by_one_look_up_others_wait_the_delays(
    emu: KlingEmulator, make_client: MakeClient, fault: Fault, lookups: int
) -> None:
    seed = emu.add_video()
    kling = make_client(emu, lookup_delays=(0.0, 2.0, 5.0))
    emu.fault(fault, route="create")
    task = await kling.extend_video(seed.video_id)
    assert task.task_id in emu.tasks and created(emu) == 1
    assert requests_to(emu, "get") == lookups
    assert requests_to(emu, "create") == 2


@pytest.mark.parametrize(("fault", "scans"), [(Fault.SERVER_5001, 1), (Fault.DROP_BEFORE, 3)])
async def test_relay_scans_once_after_a_finished_server_answer(
    emu: KlingEmulator, make_client: MakeClient, fault: Fault, scans: int
) -> None:
    """Nothing proves absence on a relay, but after a finished answer a later scan shows no
    more than the first: the create is ambiguous at once, its parent's turn free again."""
    seed = emu.add_video()
    kling = make_client(emu, "relay", lookup_delays=(0.0, 2.0, 5.0))
    emu.fault(fault, route="create")
    with pytest.raises(AmbiguousSubmitError):
        await kling.extend_video(seed.video_id, parent_task_id=seed.task_id)
    assert requests_to(emu, "list") == scans
    assert created(emu) == 0
