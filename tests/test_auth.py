"""Tokens: claims, caching, re-minting across expiry, 1003/1004 recovery, and secrets kept out
of logs, reprs and errors."""

from __future__ import annotations

import asyncio
import logging

import jwt
import pytest

from kling_async import (
    AccessKeyPair,
    AuthenticationError,
    FakeClock,
    KlingClient,
    RetryPolicy,
)
from kling_async.testing import Fault, KlingEmulator

from .conftest import MakeClient, MakeEmulator, requests_to

AK, SK = "test-ak-not-a-secret", "test-sk-not-a-secret-but-32-bytes-long"


def test_token_claims_and_header() -> None:
    clock = FakeClock(start_time=1_800_000_000)
    pair = AccessKeyPair(AK, SK, clock=clock)
    header = pair.authorization()
    assert header.startswith("Bearer ") and header.count(" ") == 1
    token = header.removeprefix("Bearer ")
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims == {"iss": AK, "exp": 1_800_001_800, "nbf": 1_799_999_995}


async def test_a_client_on_a_scaled_clock_mints_its_tokens_on_real_time() -> None:
    # A ScaledClock speeds up tasks, not tokens: Kling (and the emulator) judge them on real
    # time, so the 30 minutes are real ones even after the client's clock has run past them.
    async with KlingEmulator(time_scale=100_000) as emu:
        seed = emu.add_video()
        async with KlingClient(**emu.client_kwargs("jwt"), clock=emu.clock) as kling:
            started = emu.clock.time()
            await asyncio.sleep(0.05)
            assert emu.clock.time() - started > 1800
            task = await kling.get_task(seed.task_id, kind="text2video")
            # Minted on the scaled clock, its nbf would be over an hour ahead of real time: 1003.
            assert task.task_id == seed.task_id


async def test_token_is_cached_then_reminted_before_expiry() -> None:
    clock = FakeClock()
    pair = AccessKeyPair(AK, SK, clock=clock)
    first = pair.authorization()
    await clock.advance(1800 - 61)
    assert pair.authorization() == first
    await clock.advance(2)  # now inside the 60-second margin
    second = pair.authorization()
    assert second != first


async def test_expired_token_is_reminted_once_and_retried(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """The server's clock runs 100 s ahead: our cached token expires there first (1004)."""
    server_clock = FakeClock(start_time=clock.time() + 100)
    emu = await make_emulator(clock=server_clock)
    kling = make_client(emu)
    seed = emu.add_video()
    task = await kling.extend_video(seed.video_id)
    await clock.advance(1720)
    await server_clock.advance(1720)
    again = await kling.get_task(task)
    assert again.task_id == task.task_id
    assert emu.stats.requests[("GET", "get", 401)] == 1
    assert emu.stats.requests[("GET", "get", 200)] == 1


async def test_not_yet_valid_token_widens_the_skew(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    """The server's clock runs 8 s behind: nbf = now-5 is in its future (1003)."""
    emu = await make_emulator(clock=FakeClock(start_time=clock.time() - 8))
    kling = make_client(emu)
    seed = emu.add_video()
    task = await kling.extend_video(seed.video_id)  # creates are retried after 1003 too
    assert task.task_id in emu.tasks
    assert emu.stats.requests[("POST", "create", 401)] == 1
    assert kling._transport.credentials.skew == 10  # type: ignore[attr-defined]


async def test_a_token_that_stays_expired_is_retried_only_once(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(clock=FakeClock(start_time=clock.time() + 4000))
    kling = make_client(emu)
    with pytest.raises(AuthenticationError) as info:
        await kling.get_task("1")
    assert info.value.code == 1004 and info.value.http_status == 401
    assert requests_to(emu, "get") == 2


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"access_key": "emu-ak-0001", "secret_key": "wrong-secret"}, 1002),
        ({"access_key": "unknown-ak", "secret_key": "emu-sk-0001"}, 1002),
        ({"api_key": "not-a-key"}, 1002),
    ],
)
async def test_bad_credentials_are_not_retried(
    emu: KlingEmulator, kwargs: dict[str, str], code: int
) -> None:
    async with KlingClient(base_url=emu.url, retry=RetryPolicy.no_wait(), **kwargs) as kling:
        with pytest.raises(AuthenticationError) as info:
            await kling.extend_video("v1")
    assert info.value.code == code and not info.value.retryable
    assert requests_to(emu, "create") == 1


async def test_relay_keys_do_not_open_official_routes(emu: KlingEmulator) -> None:
    relay = emu.client_kwargs("relay")
    async with KlingClient(
        api_key=relay["api_key"], base_url=emu.url, retry=RetryPolicy.no_wait()
    ) as kling:
        with pytest.raises(AuthenticationError):
            await kling.get_task("1")


async def test_no_secret_in_logs_reprs_or_errors(
    make_emulator: MakeEmulator, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    ak, sk, key = "ak-SECRET-111", "sk-SECRET-222", "key-SECRET-333"
    emu = await make_emulator(access_key=ak, secret_key=sk, api_keys=(key,))
    caplog.set_level(logging.DEBUG, logger="kling_async")
    seen: list[str] = []
    async with KlingClient(
        access_key=ak, secret_key=sk, base_url=emu.url, clock=clock, retry=RetryPolicy.no_wait()
    ) as kling:
        token = kling._transport.credentials.authorization().removeprefix("Bearer ")
        seed = emu.add_video()
        task = await kling.extend_video(seed.video_id)
        emu.fault(Fault.GATEWAY_HTML_502, route="get")
        await kling.get_task(task)
        seen += [repr(kling), str(kling), repr(kling._transport.credentials)]
        for bad in (
            KlingClient(access_key=ak, secret_key="wrong", base_url=emu.url),
            KlingClient(api_key=key + "x", base_url=emu.url),
        ):
            async with bad:
                try:
                    await bad.get_task("1")
                except AuthenticationError as exc:
                    seen += [str(exc), repr(exc)]
            seen.append(repr(bad))
    assert len(seen) == 9
    haystack = caplog.text + "\n".join(seen)
    assert "GET" in caplog.text  # the log did record requests
    for secret in (ak, sk, key, token, "SECRET"):
        assert secret not in haystack
