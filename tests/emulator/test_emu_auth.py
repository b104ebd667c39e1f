"""Authorization on both flavours: every 401 code, judged against the emulator's token clock
(its FakeClock in most tests here; real time under a ScaledClock)."""

from __future__ import annotations

import asyncio
import email.utils
import time
import uuid
import warnings
from typing import Any

import aiohttp
import jwt
import pytest

from kling_async.clock import FakeClock
from kling_async.testing import KlingEmulator

EXTEND = "/v1/videos/video-extend"


async def test_jwt_and_static_key_are_accepted_on_official_routes(api: Any) -> None:
    for header in (f"Bearer {api.mint()}", "Bearer emu-static-key"):
        status, answer = await api.list(headers={"Authorization": header})
        assert (status, answer["code"], answer["message"]) == (200, 0, "SUCCEED")
        uuid.UUID(answer["request_id"])


async def test_relay_key_is_accepted_on_relay_routes(api: Any) -> None:
    status, answer = await api.list(flavour="relay")
    assert (status, answer["code"]) == (200, 0)


async def test_missing_header_is_1001(api: Any) -> None:
    for headers in ({}, {"Authorization": ""}, {"Authorization": "   "}):
        status, answer = await api.list(headers=headers)
        api.assert_error(status, answer, 401, 1001)


@pytest.mark.parametrize(
    "template",
    ["Bearer  {t}", "bearer {t}", "Token {t}", "{t}", "Bearer {t} extra", "Bearer\t{t}"],
)
async def test_malformed_header_is_1002(api: Any, template: str) -> None:
    header = template.format(t=api.mint())
    status, answer = await api.list(headers={"Authorization": header})
    api.assert_error(status, answer, 401, 1002)


async def test_bad_tokens_are_1002_and_never_echoed(api: Any) -> None:
    now = api.emu.clock.time()
    wrong_key = jwt.encode(
        {"iss": api.emu.credentials.access_key, "exp": int(now) + 60},
        "another-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    tokens = [
        wrong_key,
        api.mint(iss="someone-else"),
        api.mint(exp=None),
        api.mint(exp="tomorrow"),
        api.mint(nbf="yesterday"),
        "not-a-jwt",
        "sk-emu-relay",
    ]
    for token in tokens:
        status, answer = await api.list(headers={"Authorization": f"Bearer {token}"})
        api.assert_error(status, answer, 401, 1002)
        assert token not in answer["message"]


async def test_nbf_in_the_future_is_1003(api: Any) -> None:
    token = api.mint(nbf_in=60)
    status, answer = await api.list(headers={"Authorization": f"Bearer {token}"})
    api.assert_error(status, answer, 401, 1003)


async def test_expiry_follows_the_emulator_clock(api: Any, clock: FakeClock) -> None:
    headers = {"Authorization": f"Bearer {api.mint(exp_in=1800)}"}
    status, _ = await api.list(headers=headers)
    assert status == 200
    await clock.advance(1800)
    status, answer = await api.list(headers=headers)
    api.assert_error(status, answer, 401, 1004)


async def test_keys_do_not_cross_flavours(api: Any) -> None:
    for header in (f"Bearer {api.mint()}", "Bearer emu-static-key"):
        status, answer = await api.list(headers={"Authorization": header}, flavour="relay")
        api.assert_error(status, answer, 401, 1002)
    status, answer = await api.list(headers={"Authorization": "Bearer sk-emu-relay"})
    api.assert_error(status, answer, 401, 1002)


async def test_every_route_is_guarded_and_refusals_create_nothing(api: Any) -> None:
    seed = api.emu.add_video()
    routes = [
        ("POST", EXTEND, {"video_id": seed.video_id, "task_id": seed.task_id}),
        ("GET", EXTEND, None),
        ("GET", f"{EXTEND}/{seed.task_id}", None),
        ("GET", f"/v1/videos/text2video/{seed.task_id}", None),
    ]
    for method, path, body in routes:
        for flavour in ("official", "relay"):
            status, answer = await api.call(method, path, flavour=flavour, headers={}, json=body)
            api.assert_error(status, answer, 401, 1001)
    assert api.emu.stats.created == 0
    assert api.emu.stats.requests[("POST", "create", 401)] == 2


async def test_short_secret_keys_still_verify(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with KlingEmulator(clock=clock, secret_key="short") as emu:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            token = jwt.encode(
                {"iss": "emu-ak-0001", "exp": int(clock.time()) + 60}, "short", algorithm="HS256"
            )
        async with http.get(emu.url + EXTEND, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200


def test_default_secret_is_long_enough_for_pyjwt_without_warnings() -> None:
    emu = KlingEmulator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jwt.encode({"iss": "x"}, emu.credentials.secret_key, algorithm="HS256")


def test_repr_hides_the_secret_key() -> None:
    emu = KlingEmulator(secret_key="emu-secret-that-must-not-show-up-anywhere")
    assert "must-not-show" not in repr(emu.credentials)
    assert "must-not-show" not in repr(emu)


def _real_time_token(emu: KlingEmulator, *, exp_in: float = 1800, nbf_in: float = -5) -> str:
    """A token as a third-party client mints one: PyJWT on the machine's real clock."""
    now = time.time()
    claims = {"iss": emu.credentials.access_key, "exp": int(now + exp_in), "nbf": int(now + nbf_in)}
    return jwt.encode(claims, emu.credentials.secret_key, algorithm="HS256")


async def test_a_real_time_token_outlives_thirty_scaled_minutes(
    http: aiohttp.ClientSession,
) -> None:
    # Kling judges tokens on real time; the scale is for task durations only.
    async with KlingEmulator(time_scale=100_000) as emu:
        headers = {"Authorization": f"Bearer {_real_time_token(emu)}"}
        started = emu.clock.time()
        body = {"video_id": emu.add_video().video_id}
        async with http.post(emu.url + EXTEND, json=body, headers=headers) as r:
            assert r.status == 200
            task_id = (await r.json())["data"]["task_id"]
        await asyncio.sleep(0.05)  # over 5,000 emulated seconds
        assert emu.clock.time() - started > 1800
        async with http.get(f"{emu.url}{EXTEND}/{task_id}", headers=headers) as r:
            answer = await r.json()
        assert (r.status, answer["code"]) == (200, 0), answer
        assert answer["data"]["task_status"] == "succeed"  # its 320 s ran on the scaled clock
        date = email.utils.parsedate_to_datetime(r.headers["Date"]).timestamp()
        assert abs(date - time.time()) < 5  # the Date header shows the clock tokens meet


@pytest.mark.parametrize(("exp_in", "nbf_in", "code"), [(-1, -60, 1004), (1800, 60, 1003)])
async def test_real_time_decides_expiry_and_not_before_at_any_scale(
    http: aiohttp.ClientSession, exp_in: float, nbf_in: float, code: int
) -> None:
    # Expired (or not yet valid) on real time is refused, however far the scaled clock has run.
    async with KlingEmulator(time_scale=100_000) as emu:
        await asyncio.sleep(0.05)
        headers = {"Authorization": f"Bearer {_real_time_token(emu, exp_in=exp_in, nbf_in=nbf_in)}"}
        async with http.get(emu.url + EXTEND, headers=headers) as r:
            answer = await r.json()
        assert (r.status, answer["code"]) == (401, code)


async def test_the_token_clock_is_injectable(http: aiohttp.ClientSession) -> None:
    tokens = FakeClock(start_time=time.time())
    async with KlingEmulator(time_scale=100, token_clock=tokens) as emu:
        headers = {"Authorization": f"Bearer {_real_time_token(emu)}"}
        async with http.get(emu.url + EXTEND, headers=headers) as r:
            assert r.status == 200
        await tokens.advance(1800)
        async with http.get(emu.url + EXTEND, headers=headers) as r:
            assert (r.status, (await r.json())["code"]) == (401, 1004)
