"""Fixtures for the hostile-server tests: servers on loopback, clients pointed at them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from kling_async import FakeClock, KlingClient, RetryPolicy

from .hostile import HostileServer

API_KEY = "sk-test-not-a-real-key-0123456789"
MakeServer = Callable[[], Any]


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[[], Any]]:
    async with contextlib.AsyncExitStack() as stack:

        async def make() -> HostileServer:
            return await stack.enter_async_context(HostileServer())

        yield make


@pytest.fixture
async def server(make_server: Callable[[], Any]) -> HostileServer:
    result: HostileServer = await make_server()
    return result


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., KlingClient]]:
    """Clients (a static key by default) with no retry waits, closed at the end."""
    clients: list[KlingClient] = []

    def make(base_url: str, **options: Any) -> KlingClient:
        if "access_key" not in options:
            options.setdefault("api_key", API_KEY)
        options.setdefault("clock", FakeClock())
        options.setdefault("retry", RetryPolicy.no_wait())
        options.setdefault("lookup_delays", (0.0,))
        client = KlingClient(base_url=base_url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
