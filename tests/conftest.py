"""Fixtures shared by the client tests: an emulator on a fake clock, clients bound to it, and
aiohttp handlers served on loopback (``serve``)."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from kling_async import FakeClock, KlingClient, RetryPolicy
from kling_async.testing import KlingEmulator

from .pg_server import PostgresServer, find_bindir

MakeEmulator = Callable[..., Awaitable[KlingEmulator]]
MakeClient = Callable[..., KlingClient]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_emulator(clock: FakeClock) -> AsyncIterator[MakeEmulator]:
    """Start emulators (on the test's fake clock unless told otherwise); all closed at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**knobs: Any) -> KlingEmulator:
            knobs.setdefault("clock", clock)
            return await stack.enter_async_context(KlingEmulator(**knobs))

        yield make


@pytest.fixture
async def emu(make_emulator: MakeEmulator) -> KlingEmulator:
    return await make_emulator()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[Callable[..., KlingClient]]:
    """Clients for an emulator: no retry waits, one lookup attempt; all closed at the end."""
    clients: list[KlingClient] = []

    def make(emulator: KlingEmulator, flavour: str = "jwt", **options: Any) -> KlingClient:
        kwargs: dict[str, Any] = {
            **emulator.client_kwargs(flavour),
            "clock": clock,
            "retry": RetryPolicy.no_wait(),
            "lookup_delays": (0.0,),
        }
        kwargs.update(options)
        client = KlingClient(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def created(emulator: KlingEmulator) -> int:
    return int(emulator.stats.created)


def requests_to(emulator: KlingEmulator, route: str, method: str | None = None) -> int:
    """How many requests the emulator saw on ``route`` (any status)."""
    return sum(
        n
        for (m, r, _status), n in emulator.stats.requests.items()
        if r == route and (method is None or m == method)
    )


Serve = Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve aiohttp handlers on 127.0.0.1 (any free port); all stopped at the end."""
    runners: list[web.AppRunner] = []

    async def start(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application()
        app.router.add_post("/kling-callback", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}/kling-callback"

    yield start
    for runner in runners:
        await runner.cleanup()


# --- PostgreSQL: a real server, started once per session by the first test that needs it ---

REQUIRE_POSTGRES = os.environ.get("KLING_REQUIRE_POSTGRES") == "1"


def no_postgres(reason: str, *, required: bool = REQUIRE_POSTGRES) -> None:
    """Skip the test for want of PostgreSQL, or fail it where it is required (CI)."""
    if required:  # CI: a missing server is a failure, never a silent skip
        pytest.fail(f"KLING_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this machine's binaries, for the whole session (see pg_server.py).
    Skips (or, with ``KLING_REQUIRE_POSTGRES=1``, fails) when there is none."""
    bindir = find_bindir()
    if bindir is None:
        no_postgres("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/postgres)")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        no_postgres("asyncpg is not installed (pip install -e '.[dev]')")
    assert bindir is not None
    with PostgresServer(bindir) as server:
        yield server


_databases = itertools.count()


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh, empty database of its own for each test; dropped afterwards (with
    any connection a killed worker left behind)."""
    name = f"kling_test_{os.getpid()}_{next(_databases)}"
    pg_server.psql(f'CREATE DATABASE "{name}"')
    yield pg_server.dsn_for(name)
    pg_server.psql(f'DROP DATABASE "{name}" WITH (FORCE)')
