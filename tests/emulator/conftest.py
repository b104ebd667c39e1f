"""Fixtures for the emulator's own tests: a FakeClock emulator, a plain aiohttp session and a
small API helper that crafts JWTs with PyJWT (deliberately not the library's client)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from kling_async.clock import FakeClock
from kling_async.testing import KlingEmulator

EXTEND = "/v1/videos/video-extend"  # paths below are relative to a flavour's base URL


class Api:
    """Raw requests against one emulator; answers come back as ``(http_status, json)``."""

    def __init__(self, emu: KlingEmulator, http: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.http = http

    def mint(self, *, exp_in: float = 1800, nbf_in: float = -5, **claims: Any) -> str:
        """An official token the way the docs make one, timed on the emulator's clock;
        a claim given as ``None`` is left out."""
        now = self.emu.clock.time()
        payload: dict[str, Any] = {
            "iss": self.emu.credentials.access_key,
            "exp": int(now + exp_in),
            "nbf": int(now + nbf_in),
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.emu.credentials.secret_key, algorithm="HS256")

    def headers(self, flavour: str = "official") -> dict[str, str]:
        if flavour == "relay":
            return {"Authorization": f"Bearer {self.emu.credentials.relay_keys[0]}"}
        return {"Authorization": f"Bearer {self.mint()}"}

    def base(self, flavour: str) -> str:
        return self.emu.relay_url if flavour == "relay" else self.emu.url

    async def call(
        self,
        method: str,
        path: str,
        *,
        flavour: str = "official",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        hdrs = self.headers(flavour) if headers is None else headers
        async with self.http.request(
            method, self.base(flavour) + path, headers=hdrs, **kwargs
        ) as r:
            return r.status, await r.json(content_type=None)

    async def create(self, body: Any, *, flavour: str = "official") -> tuple[int, Any]:
        return await self.call("POST", EXTEND, json=body, flavour=flavour)

    async def created(self, body: dict[str, Any], *, flavour: str = "official") -> dict[str, Any]:
        """Create and insist it worked; returns the create ``data``."""
        status, answer = await self.create(body, flavour=flavour)
        assert (status, answer["code"]) == (200, 0), answer
        data: dict[str, Any] = answer["data"]
        return data

    async def get(self, ident: str, *, flavour: str = "official") -> tuple[int, Any]:
        return await self.call("GET", f"{EXTEND}/{ident}", flavour=flavour)

    async def task(self, ident: str, *, flavour: str = "official") -> dict[str, Any]:
        status, answer = await self.get(ident, flavour=flavour)
        assert (status, answer["code"]) == (200, 0), answer
        data: dict[str, Any] = answer["data"]
        return data

    async def list(
        self, query: str = "", *, flavour: str = "official", headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return await self.call("GET", f"{EXTEND}{query}", flavour=flavour, headers=headers)

    @staticmethod
    def assert_error(status: int, answer: Any, http: int, code: int) -> None:
        """An error envelope: exactly code, message, request_id (a UUID), and the HTTP status."""
        assert status == http, answer
        assert set(answer) == {"code", "message", "request_id"}, answer
        assert answer["code"] == code, answer
        assert isinstance(answer["message"], str)
        assert answer["message"]
        uuid.UUID(answer["request_id"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    """Override in a test module (or parametrize) to configure the ``emu`` fixture."""
    return {}


@pytest.fixture
async def emu(clock: FakeClock, emulator_options: dict[str, Any]) -> AsyncIterator[KlingEmulator]:
    async with KlingEmulator(clock=clock, **emulator_options) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(emu: KlingEmulator, http: aiohttp.ClientSession) -> Api:
    return Api(emu, http)


class Receiver:
    """A callback endpoint on 127.0.0.1 recording ``(headers, raw body)`` of each POST."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.first_delay = 0.0  # real seconds the first POST waits before it is recorded
        self.calls = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(self.first_delay)
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hook"
    yield rec
    await runner.cleanup()


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait (real time, briefly) until ``condition()`` holds, for work that crosses sockets."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[[Callable[[], bool]], Awaitable[None]]:
    return eventually
