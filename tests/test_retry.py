"""The Retrier on its own: attempts, waits, hooks and give-ups, on a fake clock.

The emulator tests (test_creates, test_auth) show the rules end to end; these pin down the
counting, so that an optimisation of the call path (the first attempt runs outside backoff)
cannot change what the hooks see or how often a request is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from kling_async import FakeClock, RetryPolicy
from kling_async.errors import (
    AuthenticationError,
    ConcurrencyLimitError,
    InsufficientBalanceError,
    RateLimitError,
    ServerError,
    TransportError,
)
from kling_async.retry import Retrier, RetryEvent, retryable_create, retryable_read


def _failing(
    errors: list[Exception], result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A call that raises ``errors`` one by one, then returns ``result``; and its call count."""
    calls = [0]

    async def call() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result

    return call, calls


def _policy(events: list[RetryEvent], giveups: list[RetryEvent], **changes: object) -> RetryPolicy:
    return RetryPolicy(
        jitter=lambda wait: wait,  # deterministic waits: base * 2**(attempt-1)
        on_retry=events.append,
        on_giveup=giveups.append,
        **changes,  # type: ignore[arg-type]
    )


async def test_a_first_success_sends_once_and_reports_nothing() -> None:
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    call, calls = _failing([])
    retrier = Retrier(_policy(events, giveups), FakeClock(), retryable_read)
    assert await retrier(call, "get") == "ok"
    assert calls == [1] and events == [] and giveups == []


async def test_failures_are_counted_waited_and_reported_in_order() -> None:
    clock = FakeClock()
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    call, calls = _failing([ServerError("a", code=5000), ServerError("b", code=5001)])
    retrier = Retrier(_policy(events, giveups, base=2.0), clock, retryable_read)
    run = asyncio.ensure_future(retrier(call, "get"))
    for _ in range(10):
        await clock.advance(1.0)
    assert await run == "ok"
    assert calls == [3]
    assert [(e.attempt, e.wait, e.operation) for e in events] == [(1, 2.0, "get"), (2, 4.0, "get")]
    assert [str(e.error) for e in events] == [
        str(ServerError("a", code=5000)),
        str(ServerError("b", code=5001)),
    ]
    assert events[1].elapsed == pytest.approx(2.0)  # slept 2 s on the clock before attempt 2
    assert giveups == []


async def test_max_attempts_gives_up_with_the_last_error() -> None:
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    errors: list[Exception] = [RateLimitError(f"r{i}", code=1302) for i in range(5)]
    last = errors[2]
    call, calls = _failing(errors)
    retrier = Retrier(
        _policy(events, giveups, max_attempts=3, wait=False), FakeClock(), retryable_read
    )
    with pytest.raises(RateLimitError) as caught:
        await retrier(call, "list")
    assert caught.value is last
    assert calls == [3]
    assert [e.attempt for e in events] == [1, 2]
    assert [g.attempt for g in giveups] == [3]


@pytest.mark.parametrize("max_attempts", [1, 2])
async def test_a_single_attempt_policy_never_retries(max_attempts: int) -> None:
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    call, calls = _failing([ServerError("x", code=5000)] * 3)
    policy = _policy(events, giveups, max_attempts=max_attempts, wait=False)
    with pytest.raises(ServerError):
        await Retrier(policy, FakeClock(), retryable_read)(call, "get")
    assert calls == [max_attempts]
    assert len(events) == max_attempts - 1 and len(giveups) == 1


async def test_a_non_retryable_first_failure_is_raised_at_once() -> None:
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    error = InsufficientBalanceError("balance", code=1102, http_status=429)
    call, calls = _failing([error])
    retrier = Retrier(_policy(events, giveups), FakeClock(), retryable_create)
    with pytest.raises(InsufficientBalanceError) as caught:
        await retrier(call, "create")
    assert caught.value is error
    assert calls == [1] and events == []
    assert [g.attempt for g in giveups] == [1]


async def test_a_sent_create_is_never_retried_but_an_unsent_one_is() -> None:
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    policy = _policy(events, giveups, wait=False)
    sent, sent_calls = _failing([TransportError("reset", request_sent=True)])
    with pytest.raises(TransportError):
        await Retrier(policy, FakeClock(), retryable_create)(sent, "create")
    assert sent_calls == [1]
    unsent, unsent_calls = _failing([TransportError("refused", request_sent=False)])
    assert await Retrier(policy, FakeClock(), retryable_create)(unsent, "create") == "ok"
    assert unsent_calls == [2]


async def test_a_stale_token_is_retried_once_without_waiting() -> None:
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    errors: list[Exception] = [AuthenticationError("expired", code=1004) for _ in range(3)]
    call, calls = _failing(errors)
    retrier = Retrier(_policy(events, giveups), FakeClock(), retryable_create)
    with pytest.raises(AuthenticationError):
        await retrier(call, "create")
    assert calls == [2]
    assert [(e.attempt, e.wait) for e in events] == [(1, 0.0)]
    assert len(giveups) == 1


async def test_1303_waits_at_least_the_floor_and_max_time_bounds_the_whole() -> None:
    clock = FakeClock()
    events: list[RetryEvent] = []
    giveups: list[RetryEvent] = []
    errors: list[Exception] = [ConcurrencyLimitError("busy", code=1303) for _ in range(10)]
    call, calls = _failing(errors)
    policy = _policy(events, giveups, base=0.01, max_time=3.5, max_attempts=None)
    run = asyncio.ensure_future(Retrier(policy, clock, retryable_create)(call, "create"))
    for _ in range(10):
        await clock.advance(0.5)
    with pytest.raises(ConcurrencyLimitError):
        await run
    # Waits of 1 s (the floor, not 0.01 s): sent at 0, 1, 2 and 3 s; a fourth wait would end
    # at 4 s, past max_time, so it gives up there.
    assert [(e.attempt, e.wait, e.elapsed) for e in events] == [
        (1, 1.0, 0.0),
        (2, 1.0, 1.0),
        (3, 1.0, 2.0),
    ]
    assert calls == [4]
    assert [g.attempt for g in giveups] == [4]
