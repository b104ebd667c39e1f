"""Reads end on one deadline: a poll whose answer stalls half-way is given up at ``total``
even with no per-chunk ``read`` limit (the default for reads, issue #16), and a per-chunk
limit still applies when asked for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from kling_async import KlingClient, RequestTimeoutError, RetryPolicy, Timeouts
from kling_async.transport import READ_TIMEOUTS


@pytest.fixture
async def stalling_api() -> AsyncIterator[str]:
    """An API whose GET answers start, then stall for a minute before the rest."""

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 200
        await response.prepare(request)
        await response.write(b'{"code": 0, "message": "SUCCEED", ')
        await asyncio.sleep(60)
        return response

    app = web.Application()
    app.router.add_get("/v1/videos/video-extend/{task_id}", stall)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


def test_reads_default_to_one_deadline_for_the_whole_request() -> None:
    assert READ_TIMEOUTS.read is None
    assert READ_TIMEOUTS.total is not None and READ_TIMEOUTS.total <= 30
    assert READ_TIMEOUTS.connect == 10


@pytest.mark.parametrize(
    "timeouts",
    [Timeouts(connect=1.0, read=None, total=0.3), Timeouts(connect=1.0, read=0.3, total=None)],
    ids=["total-only", "per-chunk"],
)
async def test_a_stalled_answer_is_given_up_at_its_deadline(
    stalling_api: str, timeouts: Timeouts
) -> None:
    retry = RetryPolicy(max_attempts=1)
    async with KlingClient(api_key="key", base_url=stalling_api, retry=retry) as kling:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await kling.get_task("815336423632572487", timeouts=timeouts)
    assert time.monotonic() - started < 5.0
